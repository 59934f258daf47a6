/**
 * A TCP port on 127.0.0.1 that refuses connections, for tests of an unreachable upstream or
 * gateway. Port 2 (port 1 is on fetch's list of blocked ports, so the CLI would not even try), not
 * a port a test server has just closed: the system hands closed ephemeral ports out again, and a
 * server that another test file starts meanwhile then answers in its place (it happened once in
 * test/routing-attempts.test.ts). Ports below 1024 are never handed out as ephemeral ports, and
 * no test binds one.
 */
export const REFUSED_PORT = 2;

/** `http://127.0.0.1:2`. */
export const REFUSED_ORIGIN = `http://127.0.0.1:${REFUSED_PORT}`;
