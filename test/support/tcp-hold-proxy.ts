import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a server (Redis) that a test can make hold what clients send: bytes
 * that arrive while holding are kept, never forwarded, so the commands they carry are
 * provably in flight (sent, unanswered) when the test then kills the server. A client
 * connection ends when its server connection does, as it would without the proxy.
 */
export interface HoldProxy {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** From now on, keep what clients send instead of forwarding it. */
  hold: () => void;
  /** Resolves once some bytes are being held: at least one command is in flight. */
  holding: () => Promise<void>;
  /**
   * As the server dying looks from the client: every connection reset, new ones refused. (A
   * proxy that kept accepting would look like a server coming back up.)
   */
  close: () => Promise<void>;
}

export async function startHoldProxy(targetPort: number): Promise<HoldProxy> {
  let held = false;
  let heldBytes = 0;
  let onHeld: (() => void) | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (!held) {
        upstream.write(chunk);
        return;
      }
      heldBytes += chunk.length;
      onHeld?.();
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    hold: () => {
      held = true;
    },
    holding: () =>
      heldBytes > 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onHeld = resolve;
          }),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.resetAndDestroy();
      await closed;
    },
  };
}
