import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AttemptRecord } from '../pipeline/attempts.js';
import type { Principal } from '../pipeline/auth.js';
import type { TokenUsage } from '../pipeline/usage.js';
import type { PendingWork } from './pending-work.js';
import type { StreamShutdown } from './stream-shutdown.js';

/**
 * One request as the request log, the usage record and the metrics see it when it closes. ①
 * auth sets the principal, ④ the route (② request limits read the model), ③ the cache verdict;
 * what answering found (usage, a stream's end) is written once, at the end of the forward path
 * (pipeline/forward-outcome.ts). Stages hand each other values, not fields here.
 */
export interface GatewayContext {
  startedAt: number;
  /** Aborted when the client goes away before the response is complete. */
  abort: AbortController;
  /** Set by ① auth on /v1 requests; unset means nobody was authenticated, which allows nothing. */
  principal?: Principal;
  model?: string;
  deployment?: string;
  /** The upstream's name for the model (prices are per upstream model). */
  upstreamModel?: string;
  stream?: boolean;
  usage?: TokenUsage;
  /** The usage above was counted by the gateway (the upstream reported none, or the client left). */
  usageEstimated?: boolean;
  /** performance.now() when the first streamed event went to the client. */
  firstChunkAt?: number;
  /** ③ cache's verdict, once the response cache decides. */
  cache?: CacheStatus;
  /** The pipeline's work on this request, while it may outlive the response (streams). */
  finishing?: Promise<unknown>;
  /** True when the response ended with an error event after the 200 went out. */
  streamError?: boolean;
  /** ⑤ every attempt over the model's deployments (and fallbacks), for the request log. */
  attempts?: AttemptRecord[];
  /** What the pipeline threw, if anything: ⑦ usage tells the upstream's errors from the gateway's. */
  failure?: unknown;
}

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS' | 'REFRESH';

declare module 'fastify' {
  interface FastifyRequest {
    gateway: GatewayContext;
  }
}

export function createGatewayContext(
  request: FastifyRequest,
  reply: FastifyReply,
  /**
   * Tracks each request from its start until `onClose` has run for it, so shutdown can wait for
   * every settle and record. From the start, not from the response's close: when shutdown cuts
   * connections, the server reports itself closed before the responses' close events arrive.
   */
  pending: PendingWork,
  onClose: (request: FastifyRequest, reply: FastifyReply) => void,
  /** Told of the request until its response closes, to refuse it if shutdown comes first. */
  shutdown?: StreamShutdown,
): GatewayContext {
  const abort = new AbortController();
  const raw = reply.raw;
  shutdown?.admit(raw, request);
  let recorded!: () => void;
  pending.track(
    new Promise<void>((resolve) => {
      recorded = resolve;
    }),
  );
  const fire = () => {
    try {
      onClose(request, reply);
    } finally {
      recorded();
    }
  };
  // The response's close (not the request's) is what tells a finished exchange from a client
  // that hung up: after Node 16 a request emits close as soon as its body has been read.
  raw.once('close', () => {
    shutdown?.close(raw);
    if (!raw.writableFinished) abort.abort();
    // A client that hung up mid-stream closes the response before the pipeline has counted and
    // settled what it got: the record waits for that.
    const finishing = request.gateway.finishing;
    if (!finishing) return fire();
    finishing.then(fire, fire);
  });
  return { startedAt: performance.now(), abort };
}

export function processingMs(request: FastifyRequest): string {
  return String(Math.round(performance.now() - request.gateway.startedAt));
}
