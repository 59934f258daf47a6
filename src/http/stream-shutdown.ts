import { setMaxListeners } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ServiceUnavailableError } from '../errors.js';
import { endWithSurfaceError } from './error-surface.js';

/**
 * The end of shutdown's grace period, as the streams still being relayed see it: each ends with
 * one error event in its surface's shape saying the gateway is stopping (pipeline/stream.ts),
 * and serve.ts closes the connections left only once those events are written. Cut without one,
 * a client cannot tell a stream the gateway stopped from one the network broke (curl exits 18,
 * an SDK reports a connection error), nor that sending the request again is the answer.
 */
export class StreamShutdown {
  private readonly controller = new AbortController();
  /** Responses of streams being relayed, until each closes. */
  private readonly relaying = new Set<ServerResponse>();
  /** Every request under way, by its response, until that closes (refused if none went out). */
  private readonly open = new Map<ServerResponse, FastifyRequest>();

  constructor() {
    // Every stream being relayed listens on this one signal (and stops listening when it ends):
    // Node's warning past ten listeners would be a false alarm.
    setMaxListeners(0, this.controller.signal);
  }

  /** Aborted when the grace period ends: relays stop reading and write their last event. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** How many streams are being relayed now. */
  get streams(): number {
    return this.relaying.size;
  }

  /**
   * A request under way (every one, from its start): if nothing of its answer has gone out when
   * the grace period ends (it still waits for an upstream's answer or first event), it gets a 503
   * (refuseForShutdown) instead of the connection being cut under it. `close` once its response
   * closed.
   */
  admit(response: ServerResponse, request: FastifyRequest): void {
    this.open.set(response, request);
  }

  close(response: ServerResponse): void {
    this.open.delete(response);
  }

  /** A stream relayed on `response`: `stop` waits for it until the response has closed. */
  track(response: ServerResponse): void {
    this.relaying.add(response);
    response.once('close', () => this.relaying.delete(response));
  }

  /**
   * Ends every stream being relayed; resolves once each one's last bytes have been handed to its
   * socket, or after `limitMs` for sockets that take no more writes (a client that stopped
   * reading): closing the connections then cuts only those. Requests with no answer yet are
   * refused first (`bodyLimit`: the server's, for the refusals' messages).
   */
  async stop(limitMs: number, bodyLimit: number): Promise<void> {
    const ending = [...this.relaying].map(writtenOut);
    for (const [response, request] of this.open) {
      if (response.headersSent || response.destroyed || this.relaying.has(response)) continue;
      refuseForShutdown(request, response, bodyLimit);
      ending.push(writtenOut(response));
    }
    this.controller.abort(shuttingDownError());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(ending),
      new Promise((resolve) => {
        timer = setTimeout(resolve, limitMs);
      }),
    ]);
    clearTimeout(timer);
  }
}

/** What a stream ended by shutdown says: a 503, to send again (to another instance, or later). */
export function shuttingDownError(): ServiceUnavailableError {
  return new ServiceUnavailableError(
    'The gateway is shutting down and ended this response before it was complete; send the request again.',
  );
}

/** Resolves once the response's last bytes are written out (`finish`), or once it closed. */
function writtenOut(response: ServerResponse): Promise<void> {
  if (response.writableFinished || response.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      response.off('finish', done);
      response.off('close', done);
      resolve();
    };
    response.once('finish', done);
    response.once('close', done);
  });
}

/**
 * A request still without an answer when shutdown's grace period ends: a 503 in its API's shape
 * (send it again, to another instance or later), then its work is stopped as if its client had
 * left (its upstream call ends, its reservation is released).
 */
export function refuseForShutdown(
  request: FastifyRequest,
  response: ServerResponse,
  bodyLimit: number,
): void {
  endWithSurfaceError(response, request, shuttingDownError(), bodyLimit, request.id);
  request.gateway?.abort.abort();
}
