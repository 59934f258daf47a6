import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../store/store.js';
import { costOf } from './cost.js';
import type { ModelPrice } from './price-table.js';
import type { UsageRecord } from './usage-record.js';

const MAX_TAGS = 10;
const MAX_TAG_LENGTH = 64;

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/** `x-tollgate-tags: a,b,c`: a few short labels for attribution, nothing more. */
export function tagsOf(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag.length > 0 && tag.length <= MAX_TAG_LENGTH)
    .slice(0, MAX_TAGS);
}

/**
 * ⑦ usage, recorded: called once a response has ended (or the client left). Writes to the
 * store without the client waiting on it; a failed write is logged, never surfaced.
 */
export class UsageRecorder {
  constructor(
    private readonly store: Store,
    private readonly prices: Readonly<Record<string, ModelPrice>>,
    private readonly now: () => number = Date.now,
  ) {}

  record(request: FastifyRequest, reply: FastifyReply): void {
    const g = request.gateway;
    const principal = g.principal;
    if (principal?.kind !== 'key' || g.model === undefined || g.deployment === undefined) return;
    const usage = g.usage;
    const promptTokens = count(usage?.prompt_tokens ?? usage?.input_tokens);
    const completionTokens = count(usage?.completion_tokens ?? usage?.output_tokens);
    const promptDetails = (usage?.prompt_tokens_details ?? usage?.input_tokens_details) as
      | { cached_tokens?: unknown }
      | undefined;
    const completionDetails = (usage?.completion_tokens_details ?? usage?.output_tokens_details) as
      | { reasoning_tokens?: unknown }
      | undefined;
    const cost = usage
      ? costOf(g.upstreamModel ?? g.model, usage, this.prices)
      : { usdMicros: 0, unpriced: false };
    const record: UsageRecord = {
      at: this.now(),
      requestId: request.id,
      teamId: principal.teamId,
      keyId: principal.keyId,
      model: g.model,
      deployment: g.deployment,
      status: reply.raw.statusCode,
      promptTokens,
      completionTokens,
      totalTokens: count(usage?.total_tokens) || promptTokens + completionTokens,
      cachedTokens: count(promptDetails?.cached_tokens),
      reasoningTokens: count(completionDetails?.reasoning_tokens),
      usdMicros: cost.usdMicros,
      unpriced: cost.unpriced,
      estimated: g.usageEstimated === true,
      latencyMs: Math.round(performance.now() - g.startedAt),
      ...(g.firstChunkAt === undefined ? {} : { ttftMs: Math.round(g.firstChunkAt - g.startedAt) }),
      ...(g.cache === undefined ? {} : { cache: g.cache }),
      stream: g.stream === true,
      tags: tagsOf(request.headers['x-tollgate-tags']),
    };
    this.store.recordUsage(record).catch((error: Error) => {
      request.log.warn({ error: { message: error.message } }, 'could not record usage');
    });
  }
}
