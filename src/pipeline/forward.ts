import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse, UploadEndpoint } from '../backends/backend.js';
import { ClientLeftMidAnswerError } from '../backends/stopped-usage.js';
import { ClientAbortedError } from '../backends/transport-failure.js';
import { EndpointNotSupportedError, InvalidRequestError, RequestTooLargeError } from '../errors.js';
import { lingerAfterAnswer } from '../http/lingering-close.js';
import type { RequestRateWindow } from '../quota/quota-types.js';
import { completionTokensOfJson, estimatedUsage, StreamTally } from '../usage/output-tally.js';
import { estimatePromptTokens, requestedOutputTokens } from '../usage/token-estimate.js';
import { type Answered, Attempts, type AttemptsDeps } from './attempts.js';
import { assertModelAllowed } from './auth.js';
import type { CacheStage } from './cache.js';
import type { CacheAnswers } from './cache-answers.js';
import type { CacheFill } from './cache-fill.js';
import { closingUsageEvent } from './closing-usage.js';
import { clientWantsUsageChunk, dispatchJson, dispatchUpload, type JsonDispatch } from './dispatch.js';
import { ensureBase64Embeddings } from './embedding-encoding.js';
import { type ForwardOutcome, recordOutcome } from './forward-outcome.js';
import { ignoredStreamReplay, relayReplay } from './ignored-stream.js';
import { inBandError, jsonAnswerError } from './in-band-error.js';
import { isMessagesPreamble } from './messages-preamble.js';
import type { InferencePipeline } from './pipeline.js';
import { type QuotaStage, tokenRateHeaders } from './quota.js';
import { requestRateHeaders } from './request-limits.js';
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
import { streamSurfaceOf } from './stream-surface.js';
import { type KeptUpload, openUpload, type UploadRoute, UploadSource } from './upload-body.js';
import { StreamUsage, type TokenUsage, tokensOf, usageOfAnswer } from './usage.js';

export interface ForwardDeps {
  router: ModelRouter;
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

  /**
   * `count_tokens`: ④ routed and ② counted as a request like any other, then ⑤ attempts over the
   * deployments; nothing is generated, so nothing is reserved, cached or charged.
   */
  async countTokens(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch): Promise<unknown> {
    const outcome: ForwardOutcome = {};
    try {
      const model = typeof dispatch.body.model === 'string' ? dispatch.body.model : undefined;
      if (!model) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
      const routes = this.plan(request, model); // ④
      this.requestRates(reply, await this.deps.quota.countRequest(request.gateway.principal, model)); // ②
      const answered = await this.tryDeployments(
        request,
        reply,
        routes,
        () => 0,
        request.gateway.abort.signal,
        outcome,
        (deployment, signal) => this.attempt(request, dispatch, deployment, signal),
      ); // ⑤
      try {
        const { response, body } = answered.value;
        return sendBuffered(reply, response, body ?? Buffer.alloc(0)); // ⑥
      } finally {
        answered.end();
      }
    } finally {
      recordOutcome(request.gateway, outcome);
    }
  }

  async upload(request: FastifyRequest, reply: FastifyReply, endpoint: UploadEndpoint): Promise<unknown> {
    const source = new UploadSource(request.raw, this.deps.uploadLimit);
    const outcome: ForwardOutcome = {};
    try {
      const upload = await openUpload(request, endpoint, source, (model) =>
        this.routeUpload(request, model, endpoint),
      ); // ④
      if (upload.kind === 'kept') return await this.uploadWithAttempts(request, reply, upload, outcome);
      reply.header('x-tollgate-backend', upload.deployment.name);
      const response = await dispatchUpload(request, upload, upload.deployment, upload.body); // ⑤
      return sendStreamed(reply, response); // ⑥
    } catch (error) {
      // Refused while the client may still be sending. An answer followed by a close would
      // meet the rest of the upload, and the reset that follows loses the answer (the SDKs
      // see EPIPE and retry). Read the rest first, within the limit, then answer on a
      // connection that stays usable; past the limit, 413, closed only once the client has it.
      const rest = await source.discardRest();
      if (rest === 'ended') throw error;
      reply.header('connection', 'close');
      lingerAfterAnswer(request.raw.socket, () => source.discardAll());
      throw rest === 'over-limit' ? new RequestTooLargeError(source.limit) : error;
    } finally {
      recordOutcome(request.gateway, outcome);
    }
  }

  /**
   * ④ for an upload: a route with one attempt streams the body through to the strategy's first
   * deployment, as it arrives; one with more keeps it (in memory, within `server.uploadLimit`)
   * so that it can be sent again, to the deployments that take this endpoint.
   */
  private routeUpload(request: FastifyRequest, name: string, endpoint: UploadEndpoint): UploadRoute {
    const routes = this.plan(request, name);
    if (routes.route.retry.attempts <= 1) {
      return { kind: 'streamed', deployment: routes.groups[0]?.deployments[0] ?? routes.primary };
    }
    const able = (groups: RoutePlan['groups']) =>
      groups
        .map((group) => ({
          ...group,
          deployments: group.deployments.filter((d) => d.backend.supports(endpoint)),
        }))
        .filter((group) => group.deployments.length > 0);
    const groups = able(routes.groups);
    if (groups.length === 0) throw new EndpointNotSupportedError(endpoint, name);
    return {
      kind: 'kept',
      plan: {
        ...routes,
        groups,
        targeted: {
          context: able(routes.targeted.context),
          contentPolicy: able(routes.targeted.contentPolicy),
        },
      },
    };
  }

  /** ⑤ + ⑥ a kept upload: attempts over its deployments, each sent the whole body again. */
  private async uploadWithAttempts(
    request: FastifyRequest,
    reply: FastifyReply,
    upload: KeptUpload,
    outcome: ForwardOutcome,
  ): Promise<FastifyReply> {
    // Audio is not counted in tokens: deployment token limits see none of it.
    const answered = await this.tryDeployments(
      request,
      reply,
      upload.plan,
      () => 0,
      request.gateway.abort.signal,
      outcome,
      async (deployment, signal) => {
        const response = await dispatchUpload(
          request,
          upload,
          deployment,
          upload.bodyFor(deployment),
          signal,
        );
        // A transcript is small: read whole, so a failure while reading it can still be retried.
        return { response, body: await collectBody(response, this.deps.maxJsonBytes) };
      },
    );
    try {
      const { response, body } = answered.value;
      return sendBuffered(reply, response, body ?? Buffer.alloc(0));
    } finally {
      answered.end();
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

    // ③ cache: answered from it, or this request goes upstream (filling the entry, maybe).
    const plan = cache.plan(request, reply, dispatch, deployment, model);
    // ② request rates, before the cache answers (a hit is still a request). Without a cache
    // plan they are counted with the reservation below, in the same store round trip.
    if (plan) {
      this.requestRates(reply, await quota.countRequest(g.principal, model));
      // Only now is the cache consulted: a request the rate refused was neither a hit nor a miss.
      cache.consulted(request, reply, plan);
    }
    if (plan?.perItem) {
      const upstream = (partial: JsonDispatch, held: Reservation) =>
        this.tryJson(request, reply, routes, partial, held, g.abort.signal, outcome);
      Object.assign(
        outcome,
        await cacheAnswers.embedWithItems(request, reply, dispatch, deployment, model, plan, upstream),
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
    // The client left while this request waited (on an identical one in flight, or on the
    // store): nothing went upstream for it, so nothing is reserved or charged; it ends as any
    // client that left before an answer.
    if (g.abort.signal.aborted) {
      await fill?.finish(null);
      throw new ClientAbortedError();
    }

    // ② the reservation: tokens, concurrency, budget; held until the answer is settled (⑦).
    let reservation: Reservation;
    try {
      const ask = {
        principal: g.principal,
        endpoint: dispatch.endpoint,
        body: dispatch.body,
        // Estimated at the model's first deployment whichever answers; settled at the one that did.
        upstreamModel: routes.primary.upstreamModel,
        model,
        log: request.log,
      };
      if (plan) reservation = await quota.reserve(ask);
      else {
        const admission = await quota.admit(ask);
        this.requestRates(reply, admission.requests);
        reservation = admission.reservation;
      }
    } catch (error) {
      await fill?.finish(null);
      throw error;
    }
    if (reservation.tokensPerMinute) reply.headers(tokenRateHeaders(reservation.tokensPerMinute));
    const promptTokens = () =>
      reservation.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
    // ⑦ without usage from the upstream: the prompt as counted plus the output counted here.
    const countUsage = (completionTokens: () => number) => {
      if (outcome.usage || g.principal?.kind !== 'key') return;
      outcome.usage = estimatedUsage(promptTokens(), completionTokens());
      outcome.usageEstimated = true;
    };

    const clientSignal = fill?.upstreamSignal(g.abort.signal) ?? g.abort.signal;
    // A stream that shutdown ends still has its client (whose abort ends the upstream request):
    // the relay ends the upstream request through this instead.
    const shutdownCut = dispatch.stream && this.deps.relay.shutdown ? new AbortController() : undefined;
    const signal = shutdownCut ? followAbort(clientSignal, shutdownCut) : clientSignal;
    let answered: Answered<AttemptAnswer> | undefined;
    /** Bytes still flowing after this returns (audio): the hold ends when the response does. */
    let endsWithResponse = false;
    try {
      // ⑤ the backend call and everything read before the client sees a byte, per attempt.
      answered = await this.tryJson(request, reply, routes, dispatch, reservation, signal, outcome);
      const { response, started, body: json } = answered.value;
      const won = answered;
      const answering = won.deployment;
      const settle = (usage: Parameters<Reservation['settle']>[0]) => {
        const tokens = tokensOf(usage);
        if (tokens !== undefined) void won.used(tokens);
        return reservation.settle(usage, answering.upstreamModel);
      };
      if (started) {
        return await this.relayStream(request, reply, dispatch, started, {
          usageCounted: response.usageCounted,
          partialUsage: response.partialUsage,
          fill,
          signal,
          abortUpstream: shutdownCut && (() => shutdownCut.abort()),
          outcome,
          countUsage,
          reservation,
          settle,
        });
      }
      if (json === undefined) {
        await fill?.finish(null);
        // Speech answers in audio bytes; any other endpoint answered something that is not JSON
        // (an odd upstream's 200 text): it reported no usage, so its prompt is charged as counted.
        if (response.status < 300 && dispatch.endpoint !== 'audio.speech') countUsage(() => 0);
        await settle(outcome.usage);
        // The deployment is busy until the last byte is relayed (or the client left), not at hand-off.
        endsWithResponse = true;
        // A response already closed (the client left) has fired its close: end at once.
        if (g.abort.signal.aborted) won.end();
        else reply.raw.once('close', won.end);
        return sendStreamed(reply, response); // ⑥ audio and other bytes
      }
      let body = json;
      outcome.usage = usageOfAnswer(dispatch.endpoint, body); // ⑦
      if (response.usageCounted?.()) outcome.usageEstimated = true;
      if (response.status < 300) countUsage(() => completionTokensOfJson(body));
      if (dispatch.endpoint === 'embeddings' && dispatch.body.encoding_format === 'base64') {
        body = ensureBase64Embeddings(body);
      }
      // An upstream that ignored `stream: true` answered whole: the client gets the stream it asked for.
      const replay = ignoredStreamReplay(
        dispatch,
        response,
        body,
        () => outcome.usage ?? estimatedUsage(promptTokens(), completionTokensOfJson(json)),
      );
      if (replay) {
        const sse = await relayReplay(request, reply, replay, dispatch, this.deps.relay); // ⑥
        outcome.firstChunkAt = sse.firstChunkAt;
        outcome.streamError = sse.streamError;
      } else sendBuffered(reply, response, body); // ⑥
      // Stored and settled once the answer is on its way: the client never waits on either.
      void fill?.finish(response.status === 200 ? body : null);
      void settle(outcome.usage); // ⑦
      return reply;
    } catch (error) {
      await fill?.finish(null);
      // The upstream failed: nothing was served, refund. A client that left before any answer
      // reached it still cost the prompt upstream: that is charged (or, from a backend that knows,
      // what its model used until it stopped). A reservation that already ended makes either a no-op.
      if (g.abort.signal.aborted) {
        if (error instanceof ClientLeftMidAnswerError) outcome.usage ??= error.usage;
        countUsage(() => 0);
        await reservation.settle(outcome.usage);
      } else await reservation.release();
      throw error;
    } finally {
      // The deployment's concurrency slot and in-flight count: held until the answer ended.
      if (!endsWithResponse) answered?.end();
    }
  }

  /**
   * ⑤ attempts over the route plan, within the request's one reservation: the first deployment
   * ready to answer, told to the client (`x-tollgate-backend`, `x-tollgate-attempts`) and to the
   * request log and usage record (`outcome.attempts`). When none answers, the failure names the
   * last deployment tried.
   */
  private async tryDeployments(
    request: FastifyRequest,
    reply: FastifyReply,
    routes: RoutePlan,
    /** Counted against deployments' tokens-per-minute limits (the estimate), when one has them. */
    tokens: () => number,
    signal: AbortSignal,
    outcome: ForwardOutcome,
    attempt: (deployment: Deployment, signal: AbortSignal) => Promise<AttemptAnswer>,
  ): Promise<Answered<AttemptAnswer>> {
    const attempts = new Attempts(
      { ...this.deps.attempts, router: this.deps.router },
      routes,
      tokens,
      signal,
    );
    try {
      const answered = await attempts.run(attempt);
      this.answeredBy(request, reply, answered.deployment);
      return answered;
    } catch (error) {
      if (attempts.lastTried) this.answeredBy(request, reply, attempts.lastTried);
      throw error;
    } finally {
      outcome.attempts = attempts.log;
      if (attempts.count > 0) reply.header('x-tollgate-attempts', String(attempts.count));
    }
  }

  /** ⑤ a JSON request's attempts: its estimate counted against deployments' token limits. */
  private tryJson(
    request: FastifyRequest,
    reply: FastifyReply,
    routes: RoutePlan,
    dispatch: JsonDispatch,
    reservation: Reservation,
    signal: AbortSignal,
    outcome: ForwardOutcome,
  ): Promise<Answered<AttemptAnswer>> {
    const tokens = () => capacityTokens(dispatch, reservation);
    return this.tryDeployments(request, reply, routes, tokens, signal, outcome, (deployment, attemptSignal) =>
      this.attempt(request, dispatch, deployment, attemptSignal),
    );
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

  /** OpenAI's x-ratelimit-*-requests headers, when a request rate applies. */
  private requestRates(reply: FastifyReply, window: RequestRateWindow | undefined): void {
    if (window) reply.headers(requestRateHeaders(window));
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
      // A Messages stream is read past its message_start and pings, to its first content or error.
      const preamble = dispatch.endpoint === 'messages' ? isMessagesPreamble : undefined;
      const started = await readFirstEvent(response, this.deps.relay.keepAliveMs, preamble);
      // A 200 whose first event is an error is that error's status, before the client saw a byte.
      const failure = response.status === 200 ? inBandError(started.head, preamble) : undefined;
      if (failure) {
        await started.iterator.return?.().catch(() => {});
        throw failure;
      }
      return { response, started };
    }
    if (!response.contentType.includes('json')) return { response };
    const body = await collectBody(response, this.deps.maxJsonBytes);
    // A 200 whose body is an error object is that error's status too, as a stream's first event.
    const failure = response.status === 200 ? jsonAnswerError(body) : undefined;
    if (failure) throw failure;
    return { response, body };
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
      usageCounted: BackendResponse['usageCounted'];
      partialUsage: BackendResponse['partialUsage'];
      fill: CacheFill | undefined;
      signal: AbortSignal;
      abortUpstream: (() => void) | undefined;
      outcome: ForwardOutcome;
      countUsage: (completionTokens: () => number) => void;
      reservation: Reservation;
      settle: (usage: Parameters<Reservation['settle']>[0]) => Promise<void>;
    },
  ): Promise<FastifyReply> {
    const { fill, outcome, reservation } = step;
    if (started.status === 200) fill?.streamStarted();
    // The client asked for the usage chunk: one the upstream does not send is counted here.
    const owesUsageChunk =
      dispatch.stream &&
      (dispatch.endpoint === 'chat.completions' || dispatch.endpoint === 'completions') &&
      clientWantsUsageChunk(dispatch.body);
    const tally = request.gateway.principal?.kind === 'key' || owesUsageChunk ? new StreamTally() : undefined;
    const usage = new StreamUsage(dispatch.endpoint);
    let counted: TokenUsage | undefined;
    const closingUsage = () => {
      const prompt = reservation.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
      counted = estimatedUsage(prompt, tally?.completionTokens() ?? 0);
      return closingUsageEvent(started.head, counted);
    };
    const sse = await relaySse(request, reply, started, {
      ...this.deps.relay,
      stripUsageChunk: dispatch.stream && !clientWantsUsageChunk(dispatch.body),
      usage,
      surface: streamSurfaceOf(dispatch.endpoint),
      tally,
      abortUpstream: step.abortUpstream,
      ...(owesUsageChunk && started.status === 200 ? { closingUsage } : {}),
      ...(fill
        ? {
            tee: (block: Buffer) => fill.streamBlock(block),
            // Its client left, but joined requests still follow the stream: read on for them.
            readOnWithoutClient: () => fill.hasJoiners(),
          }
        : {}),
    });
    // Stopped before its usage came (its client left, shutdown cut it) and before any count went
    // to the client: a backend that knows what its model used until it stopped says so, exactly.
    const stopped =
      sse.streamError || counted !== undefined || (sse.usage && usage.final)
        ? undefined
        : step.partialUsage?.();
    // A stream that failed is refunded below, so it is recorded as charging nothing, whatever
    // usage it reported before failing (a Messages stream's message_start carries the prompt's).
    // One that shutdown ended is not a failed one: charged for what it relayed, as if its client left.
    if (stopped) outcome.usage = stopped;
    else if (!sse.streamError) {
      outcome.usage = sse.usage ?? counted;
      if (counted) outcome.usageEstimated = true;
      if (sse.usage && !usage.final) {
        // Anthropic's prompt counts come first (`message_start`), its output count last: a stream
        // cut before that (its client left) is charged the prompt as reported and the output as relayed.
        outcome.usage = usage.withOutput(tally?.completionTokens() ?? 0);
        outcome.usageEstimated = true;
      }
      if (step.usageCounted?.()) outcome.usageEstimated = true;
    }
    outcome.streamError = sse.streamError;
    outcome.firstChunkAt = sse.firstChunkAt;
    // A cut stream (upstream or client) is never stored: it lacks its end, so the assembler
    // does not call it complete. A client that left once the end had come (Anthropic's SDK stops
    // reading at message_stop) leaves a whole answer, as does one read on for joiners.
    const whole = started.status === 200 && !sse.streamError;
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

/** `controller`'s signal, aborted when `signal` is too (one listener: AbortSignal.any costs more). */
function followAbort(signal: AbortSignal, controller: AbortController): AbortSignal {
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller.signal;
}

/** Tokens counted against a deployment's tokens-per-minute limit: prompt plus the output asked for. */
function capacityTokens(dispatch: JsonDispatch, reservation: Reservation): number {
  const prompt = reservation.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
  const output =
    dispatch.endpoint === 'embeddings' ? 0 : (requestedOutputTokens(dispatch.body, dispatch.endpoint) ?? 0);
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.round(prompt + output)));
}
