import type { FastifyReply, FastifyRequest } from 'fastify';
import { itemsOf, mergeItems, singleItemAnswer } from '../cache/embedding-items.js';
import { TokenCounter } from '../usage/token-counter.js';
import type { CacheHit, CachePlan, CacheStage } from './cache.js';
import { clientWantsUsageChunk, dispatchJson, type JsonDispatch } from './dispatch.js';
import { ensureBase64Embeddings } from './embedding-encoding.js';
import type { QuotaStage } from './quota.js';
import type { Deployment } from './router.js';
import { collectBody, type RelayOptions, relaySse, sendBuffered } from './stream.js';
import { type TokenUsage, usageFromJson } from './usage.js';

/**
 * ③ cache, the answers it gives instead of the upstream: a stored answer (as JSON or replayed
 * as a stream), a stream joined while another request receives it, and embedding batches
 * answered per input. The pipeline in app.ts decides which; these send them.
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
    plan: CachePlan,
    hit: CacheHit,
  ) {
    this.deps.cache.markHit(request, reply, hit);
    return this.charge(request, dispatch, deployment, async () => {
      const stream = dispatch.stream
        ? this.deps.cache.replayStream(hit, plan, clientWantsUsageChunk(dispatch.body))
        : undefined;
      if (stream) await relaySse(request, reply, stream, { ...this.deps.relay, stripUsageChunk: false });
      else reply.code(200).type('application/json').send(hit.answer.body);
      return usageFromJson(hit.answer.body);
    }).then(() => reply);
  }

  /**
   * Answers a hit (`send` returns the usage it stands for). Free, unless `cache.hitsSpendBudget`:
   * then it is reserved before and charged after like an upstream answer (refunded if sending fails).
   */
  private async charge(
    request: FastifyRequest,
    dispatch: JsonDispatch,
    deployment: Deployment,
    send: () => Promise<TokenUsage | undefined>,
  ): Promise<void> {
    const g = request.gateway;
    const spend = this.deps.hitsSpendBudget;
    const ticket = spend
      ? await this.deps.quota.reserve(
          g.principal,
          dispatch.endpoint,
          dispatch.body,
          deployment.upstreamModel,
          g.model,
        )
      : undefined;
    let usage: TokenUsage | undefined;
    try {
      usage = await send();
    } catch (error) {
      await this.deps.quota.release(ticket).catch(() => {});
      throw error;
    }
    g.usage = spend ? usage : undefined;
    this.deps.quota.settle(ticket, g.usage).catch((error: Error) => {
      request.log.warn({ error: { message: error.message } }, 'could not settle a quota reservation');
    });
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
    plan: CachePlan,
  ) {
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
      await this.charge(request, dispatch, deployment, async () => {
        reply.code(200).type('application/json').send(merged);
        return usageFromJson(merged);
      });
      return reply;
    }
    const body = { ...dispatch.body, input: missing.map((i) => inputs[i]) };
    const partial: JsonDispatch = { ...dispatch, body };
    const ticket = await this.deps.quota.reserve(
      g.principal,
      dispatch.endpoint,
      body,
      deployment.upstreamModel,
      g.model,
    ); // ②
    try {
      const response = await dispatchJson(request, deployment, partial); // ⑤
      let answer = await collectBody(response, this.deps.maxJsonBytes);
      g.usage = usageFromJson(answer); // ⑦
      if (response.status === 200 && dispatch.body.encoding_format === 'base64')
        answer = ensureBase64Embeddings(answer);
      const upstreamAnswer =
        response.status === 200
          ? (JSON.parse(answer.toString('utf8')) as Record<string, unknown>)
          : undefined;
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
      this.deps.quota.settle(ticket, g.usage).catch((error: Error) => {
        request.log.warn({ error: { message: error.message } }, 'could not settle a quota reservation');
      });
      return reply;
    } catch (error) {
      await (g.abort.signal.aborted
        ? this.deps.quota.settle(ticket, undefined)
        : this.deps.quota.release(ticket)
      ).catch(() => {});
      throw error;
    }
  }

  /** ③ joins the stream an identical request is receiving (here or elsewhere), from its first chunk. */
  async joinStream(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    blocks: AsyncIterable<Buffer>,
  ) {
    this.deps.cache.markHit(request, reply, { ageSeconds: 0 });
    const response = { status: 200, contentType: 'text/event-stream', headers: {}, body: blocks };
    // What another request paid for is a hit: free unless hits spend budget.
    await this.charge(request, dispatch, deployment, async () => {
      await relaySse(request, reply, response, {
        ...this.deps.relay,
        stripUsageChunk: dispatch.stream && !clientWantsUsageChunk(dispatch.body),
      });
      return request.gateway.usage;
    });
    return reply;
  }
}
