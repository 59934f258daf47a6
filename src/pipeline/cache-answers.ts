import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse, JsonEndpoint } from '../backends/backend.js';
import { itemsOf, mergeItems, singleItemAnswer } from '../cache/embedding-items.js';
import { TokenCounter } from '../usage/token-counter.js';
import type { Answered } from './attempts.js';
import type { CacheHit, CachePlan, CacheStage } from './cache.js';
import { clientWantsUsageChunk, type JsonDispatch } from './dispatch.js';
import { ensureBase64Embeddings } from './embedding-encoding.js';
import type { ForwardOutcome } from './forward-outcome.js';
import { jsonObjectOf } from './json-bytes.js';
import { type QuotaStage, tokenRateHeaders } from './quota.js';
import type { Reservation } from './reservation.js';
import type { Deployment } from './router.js';
import { collectBody, type RelayOptions, readFirstEvent, relaySse, sendBuffered } from './stream.js';
import { streamSurfaceOf } from './stream-surface.js';
import { StreamUsage, type TokenUsage, tokensOf, usageFromJson, usageOfAnswer } from './usage.js';

/**
 * ③ cache, the answers it gives instead of the upstream: a stored answer (as JSON or replayed
 * as a stream), a stream joined while another request receives it, and embedding batches
 * answered per input. The forward path (forward.ts) decides which; these send them, and return
 * what they found (usage, a stream's end) for it to record.
 */
export interface CacheAnswerDeps {
  cache: CacheStage;
  quota: QuotaStage;
  relay: RelayOptions;
  /** `cache.hitsSpendBudget`: a hit is reserved and charged like an upstream answer. */
  hitsSpendBudget: boolean;
  /** Non-streamed upstream answers are read whole up to this size. */
  maxJsonBytes: number;
}

/** What an attempt read before committing: a JSON answer is read whole. */
export interface UpstreamAnswer {
  response: BackendResponse;
  body?: Buffer | undefined;
}

/** Sends a request (within its reservation) to the first deployment that answers. */
export type UpstreamCall = (
  dispatch: JsonDispatch,
  reservation: Reservation,
) => Promise<Answered<UpstreamAnswer>>;

export class CacheAnswers {
  constructor(private readonly deps: CacheAnswerDeps) {}

  /**
   * ③ a hit: the stored answer as JSON or replayed as a stream. It costs no tokens or budget
   * unless `cache.hitsSpendBudget` says so (then it is reserved and charged like an answer).
   */
  async fromStore(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    model: string,
    plan: CachePlan,
    hit: CacheHit,
  ): Promise<ForwardOutcome> {
    this.deps.cache.markHit(request, reply, hit);
    return this.charge(request, reply, dispatch, deployment, model, async () => {
      const stream = dispatch.stream
        ? this.deps.cache.replayStream(hit, plan, clientWantsUsageChunk(dispatch.body))
        : undefined;
      const usage = usageOfAnswer(dispatch.endpoint, hit.answer.body);
      if (!stream) {
        reply.code(200).type('application/json').send(hit.answer.body);
        return { usage };
      }
      const sse = await this.relay(request, reply, stream, false, dispatch.endpoint);
      return { ...sse, usage };
    });
  }

  private async relay(
    request: FastifyRequest,
    reply: FastifyReply,
    stream: BackendResponse,
    strip: boolean,
    endpoint: JsonEndpoint,
  ) {
    const started = await readFirstEvent(stream, this.deps.relay.keepAliveMs);
    const { streamError, firstChunkAt, usage } = await relaySse(request, reply, started, {
      ...this.deps.relay,
      stripUsageChunk: strip,
      usage: new StreamUsage(endpoint),
      surface: streamSurfaceOf(endpoint),
    });
    return { streamError, firstChunkAt, usage };
  }

  /**
   * Answers a hit (`send` returns the usage it stands for). Free, unless `cache.hitsSpendBudget`:
   * then it is reserved before and charged after like an upstream answer (refunded if sending fails).
   */
  private async charge(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    model: string,
    send: () => Promise<ForwardOutcome>,
  ): Promise<ForwardOutcome> {
    const spend = this.deps.hitsSpendBudget;
    const reservation = spend
      ? await this.reserve(request, reply, dispatch, dispatch.body, deployment, model)
      : undefined;
    let sent: ForwardOutcome;
    try {
      sent = await send();
    } catch (error) {
      await reservation?.release();
      throw error;
    }
    const usage: TokenUsage | undefined = spend ? sent.usage : undefined;
    void reservation?.settle(usage);
    return { ...sent, usage };
  }

  /** ② a reservation, told to the client as the forward path tells it (`x-ratelimit-*-tokens`). */
  private async reserve(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    body: Record<string, unknown>,
    deployment: Deployment,
    model: string,
  ): Promise<Reservation> {
    const reservation = await this.deps.quota.reserve({
      principal: request.gateway.principal,
      endpoint: dispatch.endpoint,
      body,
      upstreamModel: deployment.upstreamModel,
      model,
      log: request.log,
    });
    if (reservation.tokensPerMinute) reply.headers(tokenRateHeaders(reservation.tokensPerMinute));
    return reservation;
  }

  /**
   * ③ for an embeddings batch: each input is its own entry. Inputs found are not sent; the rest
   * go upstream in one request, and the answer is put back together in the client's order.
   */
  async embedWithItems(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    model: string,
    plan: CachePlan,
    /** ⑤ sends the uncached inputs over the model's deployments (forward.ts's attempts). */
    upstream: UpstreamCall,
  ): Promise<ForwardOutcome> {
    const g = request.gateway;
    const inputs = dispatch.body.input as unknown[];
    const hashes = this.deps.cache.itemHashes(plan, dispatch, deployment, inputs);
    const found = await this.deps.cache.lookupItems(plan, hashes);
    const missing = inputs.flatMap((_, i) => (found[i] ? [] : [i]));
    reply.header('x-tollgate-cache-items', `${inputs.length - missing.length}/${inputs.length}`);
    const parsed = (hit: CacheHit) => JSON.parse(hit.answer.body.toString('utf8')) as Record<string, unknown>;
    if (missing.length === 0) {
      const answers = found.map((hit) => parsed(hit as CacheHit));
      this.deps.cache.markHit(request, reply, {
        ageSeconds: Math.max(...found.map((hit) => hit?.ageSeconds ?? 0)),
      });
      const parts = answers.map((answer) => ({ answer, item: itemsOf(answer)?.[0] ?? {} }));
      const merged = mergeItems(parts, answers[0]?.model);
      return this.charge(request, reply, dispatch, deployment, model, async () => {
        reply.code(200).type('application/json').send(merged);
        return { usage: usageFromJson(merged) };
      });
    }
    const body = { ...dispatch.body, input: missing.map((i) => inputs[i]) };
    const partial: JsonDispatch = { ...dispatch, body };
    const reservation = await this.reserve(request, reply, dispatch, body, deployment, model); // ②
    let answered: Answered<UpstreamAnswer> | undefined;
    try {
      // ⑤ the misses go through the attempts like any request: failover, circuits, limits.
      answered = await upstream(partial, reservation);
      const { response } = answered.value;
      let answer = answered.value.body ?? (await collectBody(response, this.deps.maxJsonBytes));
      const usage = usageFromJson(answer); // ⑦
      if (response.status === 200 && dispatch.body.encoding_format === 'base64')
        answer = ensureBase64Embeddings(answer);
      const upstreamAnswer = response.status === 200 ? jsonObjectOf(answer) : undefined;
      const items = upstreamAnswer && itemsOf(upstreamAnswer);
      if (!upstreamAnswer || !items || items.length !== missing.length) {
        sendBuffered(reply, response, answer); // an error (or an odd answer) goes back as it came
      } else {
        const counter = new TokenCounter();
        const fresh = missing.map((i, j) => ({
          hash: hashes[i] as string,
          body: singleItemAnswer(upstreamAnswer, items[j] ?? {}, inputs[i], counter),
        }));
        const missingAt = new Map(missing.map((i, j) => [i, j]));
        const parts = inputs.map((_, i) => {
          const hit = found[i];
          if (hit) {
            const stored = parsed(hit);
            return { answer: stored, item: itemsOf(stored)?.[0] ?? {} };
          }
          return { answer: upstreamAnswer, item: items[missingAt.get(i) ?? -1] ?? {} };
        });
        reply
          .code(200)
          .headers(response.headers)
          .type('application/json')
          .send(mergeItems(parts, upstreamAnswer.model));
        this.deps.cache.storeItems(plan, fresh).catch(() => {});
      }
      const tokens = tokensOf(usage);
      if (tokens !== undefined) void answered.used(tokens);
      void reservation.settle(usage, answered.deployment.upstreamModel);
      return { usage };
    } catch (error) {
      // A client that left cost the prompt upstream (the estimate is charged); a failure, nothing.
      await (g.abort.signal.aborted ? reservation.settle(undefined) : reservation.release());
      throw error;
    } finally {
      answered?.end();
    }
  }

  /** ③ joins the stream an identical request is receiving (here or elsewhere), from its first chunk. */
  async joinStream(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    model: string,
    blocks: AsyncIterable<Buffer>,
  ): Promise<ForwardOutcome> {
    this.deps.cache.markHit(request, reply, { ageSeconds: 0 });
    const response = { status: 200, contentType: 'text/event-stream', headers: {}, body: blocks };
    // What another request paid for is a hit: free unless hits spend budget.
    return this.charge(request, reply, dispatch, deployment, model, () =>
      this.relay(
        request,
        reply,
        response,
        dispatch.stream && !clientWantsUsageChunk(dispatch.body),
        dispatch.endpoint,
      ),
    );
  }
}
