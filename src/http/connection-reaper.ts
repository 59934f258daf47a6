import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** How often, while the server stops, connections that carry no request are looked for again. */
const REAP_EVERY_MS = 100;

/**
 * Closes, once the server stops, every connection as soon as it carries no request, so that
 * stopping waits for requests, never for connections. server.close() closes the idle keep-alive
 * connections of that moment only: one whose last response ends while draining would sit until
 * its client hangs up. And Node counts a connection that has not sent a byte yet as busy (its
 * headers timeout runs), so closeIdleConnections() never closes it: a client's pool opens one
 * ahead of its next request (Node's fetch does, e.g. after a stream it aborted), a browser
 * preconnects. server.close() would wait for that client to give up on it: Node's fetch after
 * 4 s idle, others maybe never, so `serve` until the grace period ends (closeAllConnections).
 */
export class ConnectionReaper {
  private readonly connections = new Set<Socket>();
  /** Connections that had read nothing at the last reap. */
  private readonly silent = new Set<Socket>();
  private timer: NodeJS.Timeout | undefined;

  /** Before the server listens: the connections that are already open when it stops count too. */
  constructor(private readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.connections.add(socket);
      socket.once('close', () => {
        this.connections.delete(socket);
        this.silent.delete(socket);
      });
    });
  }

  /**
   * Once the server stops: reaps now, and again every REAP_EVERY_MS until no connection is left
   * (a connection that never sends anything goes at the second, within REAP_EVERY_MS).
   */
  start(): void {
    if (this.timer) return;
    this.reap();
    this.timer = setInterval(() => {
      this.reap();
      // Not listening and nothing open: nothing is left to reap, nor can anything come.
      if (!this.server.listening && this.connections.size === 0) clearInterval(this.timer);
    }, REAP_EVERY_MS);
    this.timer.unref();
  }

  private reap(): void {
    this.server.closeIdleConnections();
    // Nothing read: no request begun (one that has begun gets its answer, a 503 while stopping).
    // Only once seen so at two reaps in a row: a connection accepted just now may have its
    // request waiting, unread yet, and would be reset instead of answered.
    for (const socket of this.connections) {
      if (socket.bytesRead > 0) this.silent.delete(socket);
      else if (this.silent.has(socket)) socket.destroy();
      else this.silent.add(socket);
    }
  }
}
