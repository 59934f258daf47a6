import { emptySums, type UsageMetric, type UsageRecord, type UsageRow } from './usage-record.js';

export type UsageGroup = 'day' | 'model' | 'key' | 'team';

const GROUP_FIELD: Record<UsageGroup, (row: UsageRow) => Record<string, string>> = {
  day: (row) => ({ day: row.day }),
  model: (row) => ({ model: row.model }),
  key: (row) => ({ key_id: row.keyId, team_id: row.teamId }),
  team: (row) => ({ team_id: row.teamId }),
};

/** Sums rows into the admin API's groups: `{<group fields>, requests, rejected, …, cost_usd}`, sorted. */
export function groupUsage(rows: UsageRow[], groupBy: UsageGroup): Array<Record<string, unknown>> {
  const groups = new Map<string, { fields: Record<string, string>; sums: Record<UsageMetric, number> }>();
  for (const row of rows) {
    const fields = GROUP_FIELD[groupBy](row);
    const id = JSON.stringify(fields);
    let group = groups.get(id);
    if (!group) {
      group = {
        fields,
        sums: emptySums(),
      };
      groups.set(id, group);
    }
    for (const metric of Object.keys(row.sums) as UsageMetric[]) group.sums[metric] += row.sums[metric];
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, { fields, sums }]) => ({
      ...fields,
      requests: sums.requests,
      rejected: sums.rejected,
      invalid: sums.invalid,
      failed: sums.failed,
      prompt_tokens: sums.prompt_tokens,
      completion_tokens: sums.completion_tokens,
      total_tokens: sums.total_tokens,
      cost_usd: sums.usd_micros / 1_000_000,
      cache_hits: sums.cache_hits,
      cache_misses: sums.cache_misses,
    }));
}

/** One request log entry as the admin API shows it (snake_case, seconds, USD). */
export function publicRequest(record: UsageRecord & { id: string }): Record<string, unknown> {
  return {
    id: record.id,
    object: 'request',
    created_at: Math.floor(record.at / 1000),
    request_id: record.requestId,
    team_id: record.teamId,
    key_id: record.keyId,
    model: record.model,
    deployment: record.deployment,
    status: record.status,
    outcome: record.outcome ?? null,
    stream: record.stream,
    prompt_tokens: record.promptTokens,
    completion_tokens: record.completionTokens,
    total_tokens: record.totalTokens,
    cached_tokens: record.cachedTokens,
    reasoning_tokens: record.reasoningTokens,
    cost_usd: record.usdMicros / 1_000_000,
    unpriced: record.unpriced,
    estimated: record.estimated,
    latency_ms: record.latencyMs,
    ttft_ms: record.ttftMs ?? null,
    cache: record.cache?.toLowerCase() ?? null,
    tags: record.tags,
    attempts: record.attempts ?? [],
  };
}
