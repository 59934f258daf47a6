import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse, UploadEndpoint } from '../backends/backend.js';
import { InvalidRequestError, RequestTooLargeError } from '../errors.js';
import { lingerAfterAnswer } from '../http/lingering-close.js';
import { completionTokensOfJson, estimatedUsage, StreamTally } from '../usage/output-tally.js';
import { estimatePromptTokens, requestedOutputTokens } from '../usage/token-estimate.js';
import { Attempts, type AttemptsDeps } from './attempts.js';
import { assertModelAllowed } from './auth.js';
import type { CacheStage } from './cache.js';
import type { CacheAnswers } from './cache-answers.js';
import type { CacheFill } from './cache-fill.js';
import { clientWantsUsageChunk, dispatchJson, dispatchUpload, type JsonDispatch } from './dispatch.js';
import { ensureBase64Embeddings } from './embedding-encoding.js';
import { type ForwardOutcome, recordOutcome } from './forward-outcome.js';
import type { InferencePipeline } from './pipeline.js';
import { type QuotaStage, tokenRateHeaders } from './quota.js';
import type { RequestLimits } from './request-limits.js';
import type { Reservation } from './reservation.js';
import type { Deployment, ModelRouter, RoutePlan } from './router.js';
import {
  collectBody,
  isEventStream,
  type RelayOptions,
  readFirstEvent,
  relaySse,
  type StartedSse,
  sendBuffered,
  sendStreamed,
} from './stream.js';
import { openUpload, UploadSource } from './upload-body.js';
import { usageFromJson } from './usage.js';

export interface ForwardDeps {
  router: ModelRouter;
  requestLimits: RequestLimits;
  quota: QuotaStage;
  cache: CacheStage;
  cacheAnswers: CacheAnswers;
  relay: RelayOptions;
  /** Non-streamed answers are read whole (usage, base64 fixes); past this an upstream is misbehaving. */
  maxJsonBytes: number;
  uploadLimit: number;
  /** ⑤ attempts over deployments: circuits and limits (store.health), clock, lease lifetime. */
  attempts: Omit<AttemptsDeps, 'router'>;
}

/** What one attempt read before anything went to the client. */
interface AttemptAnswer {
  response: BackendResponse;
  /** A stream, read ahead to its first event. */
  started?: StartedSse;
  /** A JSON answer, read whole. */
  body?: Buffer;
}

/**
 * The forward path: what happens to a /v1 request once ① auth let it in and its route parsed
 * it, top to bottom in `answer` below. ④ route, ② request rates, ③ cache (a hit, a joined
 * stream, or this request filling the entry), ② the quota reservation, ⑤ the backend call,
 * ⑥ the answer relayed (read ahead to the first event before the status is committed), ⑦ the
 * reservation settled with the usage found. Each stage returns what it found; what the request
 * log, the usage record and the metrics need is written to `request.gateway` once, at the end.
 */
export class ForwardPath implements InferencePipeline {
  constructor(private readonly deps: ForwardDeps) {}

  json(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch): Promise<unknown> {
    const work = this.forwardJson(request, reply, dispatch);
    // A stream may outlive its response: the request's record waits for this.
    request.gateway.finishing = work;
    return work;
  }

  async upload(request: FastifyRequest, reply: FastifyReply, endpoint: UploadEndpoint): Promise<unknown> {
    const source = new UploadSource(request.raw, this.deps.uploadLimit);
    try {
      const upload = await openUpload(request, endpoint, source, (model) => this.route(request, model)); // ④
      reply.header('x-tollgate-backend', upload.deployment.name);
      const response = await dispatchUpload(request, upload); // ⑤
      return sendStreamed(reply, response); // ⑥
    } catch (error) {
      // Refused while the client may still be sending. An answer followed by a close would
      // meet the rest of the upload, and the reset that follows loses the answer (the SDKs
      // see EPIPE and retry). Read the rest first, within the limit, then answer on a
      // connection that stays usable; past the limit, 413, closed only once the client has it.
      const outcome = await source.discardRest();
      if (outcome === 'ended') throw error;
      reply.header('connection', 'close');
      lingerAfterAnswer(request.raw.socket, () => source.discardAll());
      throw outcome === 'over-limit' ? new RequestTooLargeError(source.limit) : error;
    }
  }

  private async forwardJson(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch) {
    const outcome: ForwardOutcome = { stream: dispatch.stream };
    try {
      return await this.answer(request, reply, dispatch, outcome);
    } finally {
      recordOutcome(request.gateway, outcome);
    }
  }

  /** ④ the deployment for a public model name (uploads: no failover); ② counts per model from here. */
  private route(request: FastifyRequest, name: string): Deployment {
    const g = request.gateway;
    g.model = name;
    assertModelAllowed(g.principal, name);
    const deployment = this.deps.router.resolve(name);
    g.deployment = deployment.name;
    g.upstreamModel = deployment.upstreamModel;
    return deployment;
  }

  private async answer(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    outcome: ForwardOutcome,
  ): Promise<FastifyReply> {
    const { cache, cacheAnswers, quota } = this.deps;
    const g = request.gateway;
    const model = typeof dispatch.body.model === 'string' ? dispatch.body.model : dispatch.impliedModel;
    if (!model) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
    // ④ first: the cache policy and the prices depend on the route.
    const routes = this.plan(request, model);
    const deployment = routes.groups[0]?.deployments[0] ?? routes.primary;
    reply.header('x-tollgate-backend', deployment.name);
    await this.deps.requestLimits.enforce(request, reply); // ② requests per minute / day: hits count too

    // ③ cache: answered from it, or this request goes upstream (filling the entry, maybe).
    const plan = cache.plan(request, reply, dispatch, deployment, model);
    if (plan?.perItem) {
      Object.assign(
        outcome,
        await cacheAnswers.embedWithItems(request, reply, dispatch, deployment, model, plan),
      );
      return reply;
    }
    const role = plan ? await cache.role(plan, dispatch.stream, g.abort.signal) : undefined;
    if (plan && role?.kind === 'hit') {
      Object.assign(
        outcome,
        await cacheAnswers.fromStore(request, reply, dispatch, deployment, model, plan, role.hit),
      );
      return reply;
    }
    if (role?.kind === 'tail') {
      try {
        Object.assign(
          outcome,
          await cacheAnswers.joinStream(request, reply, dispatch, deployment, model, role.blocks),
        );
        return reply;
      } finally {
        role.close?.();
      }
    }
    const fill = role?.kind === 'upstream' ? role.fill : undefined;

    // ② the reservation: tokens, concurrency, budget; held until the answer is settled (⑦).
    let reservation: Reservation;
    try {
      reservation = await quota.reserve({
        principal: g.principal,
        endpoint: dispatch.endpoint,
        body: dispatch.body,
        // Estimated at the model's first deployment whichever answers; settled at the one that did.
        upstreamModel: routes.primary.upstreamModel,
        model,
        log: request.log,
      });
    } catch (error) {
      await fill?.finish(null);
      throw error;
    }
    if (reservation.tokensPerMinute) reply.headers(tokenRateHeaders(reservation.tokensPerMinute));
    // ⑦ without usage from the upstream: the prompt as counted plus the output counted here.
    const countUsage = (completionTokens: () => number) => {
      if (outcome.usage || g.principal?.kind !== 'key') return;
      const prompt = reservation.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
      outcome.usage = estimatedUsage(prompt, completionTokens());
      outcome.usageEstimated = true;
    };

    const signal = fill?.upstreamSignal(g.abort.signal) ?? g.abort.signal;
    const attempts = new Attempts(
      { ...this.deps.attempts, router: this.deps.router },
      routes,
      capacityTokens(dispatch, reservation),
      signal,
    );
    let answered: Awaited<ReturnType<typeof attempts.run<AttemptAnswer>>> | undefined;
    try {
      // ⑤ the backend call and everything read before the client sees a byte, per attempt.
      answered = await attempts.run((candidate, attemptSignal) =>
        this.attempt(request, dispatch, candidate, attemptSignal),
      );
      outcome.attempts = attempts.log;
      reply.header('x-tollgate-attempts', String(attempts.count));
      const { response, started, body: json } = answered.value;
      const answering = answered.deployment;
      this.answeredBy(request, reply, answering);
      const settle = (usage: Parameters<Reservation['settle']>[0]) =>
        reservation.settle(usage, answering.upstreamModel);
      if (started) {
        return await this.relayStream(request, reply, dispatch, started, {
          fill,
          signal,
          outcome,
          countUsage,
          reservation,
          settle,
        });
      }
      if (json === undefined) {
        await fill?.finish(null);
        await settle(undefined);
        return sendStreamed(reply, response); // ⑥ audio and other bytes
      }
      let body = json;
      outcome.usage = usageFromJson(body); // ⑦
      if (response.status < 300) countUsage(() => completionTokensOfJson(body));
      if (dispatch.endpoint === 'embeddings' && dispatch.body.encoding_format === 'base64') {
        body = ensureBase64Embeddings(body);
      }
      sendBuffered(reply, response, body); // ⑥
      // Stored and settled once the answer is on its way: the client never waits on either.
      void fill?.finish(response.status === 200 ? body : null);
      void settle(outcome.usage); // ⑦
      return reply;
    } catch (error) {
      outcome.attempts = attempts.log;
      const last = attempts.lastTried;
      // Nothing answered: the failure the client gets is the last deployment tried.
      if (!answered && last) this.answeredBy(request, reply, last);
      if (attempts.count > 0) reply.header('x-tollgate-attempts', String(attempts.count));
      await fill?.finish(null);
      // The upstream failed: nothing was served, refund. A client that left before any answer
      // reached it still cost the prompt upstream: that is charged. A reservation that already
      // ended makes either a no-op.
      if (g.abort.signal.aborted) {
        countUsage(() => 0);
        await reservation.settle(outcome.usage);
      } else await reservation.release();
      throw error;
    } finally {
      // The deployment's concurrency slot and in-flight count: held until the answer ended.
      answered?.end();
    }
  }

  /** ④ the route plan: this model's deployments, then its fallbacks the principal may use. */
  private plan(request: FastifyRequest, name: string): RoutePlan {
    const g = request.gateway;
    g.model = name;
    assertModelAllowed(g.principal, name);
    const routes = this.deps.router.plan(name, {
      // Where exactness matters a client can ask for this model or nothing.
      fallbacks: request.headers['x-tollgate-fallbacks'] !== 'off',
      mayUse: (model) => {
        try {
          assertModelAllowed(g.principal, model);
          return true;
        } catch {
          return false;
        }
      },
    });
    const first = routes.groups[0]?.deployments[0] ?? routes.primary;
    g.deployment = first.name;
    g.upstreamModel = first.upstreamModel;
    return routes;
  }

  /** The deployment that answered: what the client, the log and the usage record are told. */
  private answeredBy(request: FastifyRequest, reply: FastifyReply, deployment: Deployment): void {
    request.gateway.deployment = deployment.name;
    request.gateway.upstreamModel = deployment.upstreamModel;
    reply.header('x-tollgate-backend', deployment.name);
  }

  /**
   * ⑤ one attempt: the call, then what must be read before committing to this deployment (a
   * stream up to its first event, a JSON answer whole). Whatever fails here can still be retried.
   */
  private async attempt(
    request: FastifyRequest,
    dispatch: JsonDispatch,
    deployment: Deployment,
    signal: AbortSignal,
  ): Promise<AttemptAnswer> {
    const response = await dispatchJson(request, deployment, dispatch, signal);
    if (isEventStream(response)) {
      return { response, started: await readFirstEvent(response, this.deps.relay.keepAliveMs) };
    }
    if (!response.contentType.includes('json')) return { response };
    return { response, body: await collectBody(response, this.deps.maxJsonBytes) };
  }

  /**
   * ⑥ + ⑦ for a stream: read ahead to the first event (a failure before it is thrown, so the
   * client gets an error response and nothing was charged), then relay, reading usage as it
   * passes while ③ keeps a copy to store.
   */
  private async relayStream(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    started: StartedSse,
    step: {
      fill: CacheFill | undefined;
      signal: AbortSignal;
      outcome: ForwardOutcome;
      countUsage: (completionTokens: () => number) => void;
      reservation: Reservation;
      settle: (usage: Parameters<Reservation['settle']>[0]) => Promise<void>;
    },
  ): Promise<FastifyReply> {
    const { fill, outcome, reservation } = step;
    if (started.status === 200) fill?.streamStarted();
    const tally = request.gateway.principal?.kind === 'key' ? new StreamTally() : undefined;
    const sse = await relaySse(request, reply, started, {
      ...this.deps.relay,
      stripUsageChunk: dispatch.stream && !clientWantsUsageChunk(dispatch.body),
      tally,
      ...(fill
        ? {
            tee: (block: Buffer) => fill.streamBlock(block),
            // Its client left, but joined requests still follow the stream: read on for them.
            readOnWithoutClient: () => fill.hasJoiners(),
          }
        : {}),
    });
    outcome.usage = sse.usage;
    outcome.streamError = sse.streamError;
    outcome.firstChunkAt = sse.firstChunkAt;
    // A cut stream (upstream or client) is never stored: it lacks its end, so the assembler
    // does not call it complete. One read on for joiners after its client left is whole.
    const whole = started.status === 200 && !sse.streamError && !step.signal.aborted;
    // Stored after the client has its answer, like the settle: neither waits for the other.
    void fill?.finish(whole ? undefined : null);
    // An upstream that broke off after the 200 is refunded, like one that failed before it.
    if (sse.streamError) await reservation.release();
    else {
      // A client that left before the usage chunk pays for what was relayed to it.
      step.countUsage(() => tally?.completionTokens() ?? 0);
      await step.settle(outcome.usage); // ⑦
    }
    return reply;
  }
}

/** Tokens counted against a deployment's tokens-per-minute limit: prompt plus the output asked for. */
function capacityTokens(dispatch: JsonDispatch, reservation: Reservation): number {
  const prompt = reservation.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
  const output =
    dispatch.endpoint === 'embeddings' ? 0 : (requestedOutputTokens(dispatch.body, dispatch.endpoint) ?? 0);
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.round(prompt + output)));
}
