import type { Socket } from 'node:net';

/** How long a closing connection keeps reading what the client still sends (nginx: lingering_time). */
const LINGER_MAX_MS = 30_000;

/**
 * Closes a connection whose request body was not read to its end, after the answer, without
 * losing that answer (RFC 9112 §9.6). Closing a socket with unread bytes, or while the client
 * is still sending, makes the kernel answer with a reset, and a reset that reaches the client
 * before it read the answer discards the answer: the client sees EPIPE / ECONNRESET instead of
 * the status, and the SDKs retry it as a network failure.
 *
 * So: once the answer is out, only the sending side closes (the client reads the answer and
 * sees the end); `discard` keeps reading and dropping what the client still sends, and the
 * socket goes when the client closes its side (see lingerUntilClosed).
 */
export function lingerAfterAnswer(socket: Socket, discard: () => Promise<unknown>): void {
  // node:http ends a `connection: close` answer with destroySoon(): end, then destroy as soon as
  // the end is flushed. Here it only ends; the client's own close (or the deadline) destroys it.
  socket.destroySoon = function endOnly(this: Socket) {
    if (this.writable) this.end();
  };
  lingerUntilClosed(socket);
  discard().catch(() => {});
}

/** A socket whose sending side is (or is about to be) closed: gone once the client closes, or after LINGER_MAX_MS. */
export function lingerUntilClosed(socket: Socket): void {
  const deadline = setTimeout(() => socket.destroy(), LINGER_MAX_MS);
  deadline.unref();
  socket.once('close', () => clearTimeout(deadline));
}
