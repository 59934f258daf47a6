import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { KeptForRetryError } from '../store/kept-for-retry.js';
import type { Store } from '../store/store.js';
import { costOf } from './cost.js';
import type { ModelPrice } from './price-table.js';
import { outcomeOf } from './usage-outcome.js';
import type { UsageRecord } from './usage-record.js';

const MAX_TAGS = 10;
const MAX_TAG_LENGTH = 64;

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/** `x-tollgate-tags: a,b,c`: a few short labels for attribution, nothing more. */
export function tagsOf(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(',') : header;
  return text
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag.length > 0 && tag.length <= MAX_TAG_LENGTH)
    .slice(0, MAX_TAGS);
}

/**
 * ⑦ usage, recorded: called once a response has ended (or the client left). Records are
 * written in batches (every FLUSH_MS, or at once past MAX_BATCH), so under load recording costs
 * a few store round trips per second instead of two per request, and never one the client
 * waits on; a failed write is logged, never surfaced. A batch the store could not write for an
 * outage, it keeps and writes once Redis is back (KeptForRetryError); what it gives up on (too
 * many kept, kept past 30 minutes, or the gateway stopping first) is logged as an error, with how many records. Budgets
 * do not depend on this (quota settles on its own), so a crash loses at most the batches not yet
 * written.
 */
const FLUSH_MS = 200;
const MAX_BATCH = 500;

export class UsageRecorder {
  private pending: UsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly prices: Readonly<Record<string, ModelPrice>>,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Writes what is pending and waits for every write in progress (on shutdown). */
  async flush(): Promise<void> {
    this.write();
    await Promise.allSettled([...this.writing]);
  }

  private write(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const done = this.store.usage
      .record(batch)
      .catch((error: Error) => {
        const records = batch.length;
        if (!(error instanceof KeptForRetryError)) {
          this.log.warn({ error: { message: error.message }, records }, 'could not record usage');
          return;
        }
        this.log.warn(
          { error: { message: error.message }, records },
          'could not record usage yet: kept, and written once Redis answers again',
        );
        error.retried.then(
          () => this.log.info({ records }, 'recorded usage kept during a Redis outage'),
          (lost: Error) =>
            this.log.error({ error: { message: lost.message }, records }, 'lost usage records'),
        );
      })
      .finally(() => this.writing.delete(done));
    this.writing.add(done);
  }

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
      outcome: outcomeOf(reply.raw.statusCode, g.failure, g.streamError === true),
      promptTokens,
      completionTokens,
      totalTokens: count(usage?.total_tokens) || promptTokens + completionTokens,
      cachedTokens: count(promptDetails?.cached_tokens),
      reasoningTokens: count(completionDetails?.reasoning_tokens),
      usdMicros: cost.usdMicros,
      unpriced: cost.unpriced,
      estimated: g.usageEstimated === true,
      latencyMs: Math.round(performance.now() - g.startedAt),
      stream: g.stream === true,
      tags: tagsOf(request.headers['x-tollgate-tags']),
    };
    if (g.firstChunkAt !== undefined) record.ttftMs = Math.round(g.firstChunkAt - g.startedAt);
    if (g.cache !== undefined) record.cache = g.cache;
    // Not copied: the request is over, and every store keeps its own copy (or the JSON) of it.
    if (g.attempts !== undefined) record.attempts = g.attempts;
    this.pending.push(record);
    if (this.pending.length >= MAX_BATCH) this.write();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.write(), FLUSH_MS);
      this.timer.unref();
    }
  }
}
