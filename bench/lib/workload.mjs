// What every benchmark sends: the mock's model, the chat request, and section 6's team and key.

export const MODEL = 'bench-model';

/** The non-streamed chat request of every section (a ~1 KB answer from the mock). */
export const CHAT_BODY = JSON.stringify({
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Explain in a few sentences what an API gateway does.' },
  ],
  max_tokens: 256,
});

// Section 6's team and key: every limit and budget set (so every quota stage does its work) and
// far above what a run can use. The key's are a little tighter than the team's, as keys must be.
export const QUOTA_TEAM = {
  name: 'bench-quota',
  limits: { requests_per_minute: 100_000_000, tokens_per_minute: 1_000_000_000, max_concurrent: 10_000 },
  budgets: [
    { period: 'day', max_tokens: 100_000_000_000 },
    { period: 'month', max_usd: 1_000_000 },
  ],
};
export const QUOTA_KEY = {
  name: 'bench-quota',
  limits: { requests_per_minute: 90_000_000, tokens_per_minute: 900_000_000, max_concurrent: 9_000 },
  budgets: [
    { period: 'day', max_tokens: 90_000_000_000 },
    { period: 'month', max_usd: 900_000 },
  ],
};

/**
 * The YAML of a gateway in front of the bench's mock, on 127.0.0.1, with an admin key (the run
 * creates its team and key through the admin API); `extra` lines go first (redis, quota).
 * @param {{ port: number, upstreamOrigin: string, adminKey: string, dataDir: string, extra?: string[] }} options
 */
export function mockGatewayConfig({ port, upstreamOrigin, adminKey, dataDir, extra = [] }) {
  return [
    ...extra,
    `server: { host: 127.0.0.1, port: ${port} }`,
    'backends:',
    `  upstream: { type: openai, baseUrl: "${upstreamOrigin}/v1", apiKey: "sk-bench-upstream" }`,
    'models:',
    `  ${MODEL}: { backend: upstream, model: ${MODEL} }`,
    `admin: { key: "${adminKey}" }`,
    `dataDir: "${dataDir}"`,
    '',
  ].join('\n');
}
