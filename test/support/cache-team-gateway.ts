import OpenAI from 'openai';
import type { ConfigInput } from '../../src/config/schema.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { AdminHttp, TEST_ADMIN_KEY } from './admin-http.js';
import { cacheTestUpstream, defaultControl, type UpstreamControl } from './cache-fixtures.js';
import { type CacheWatch, watchCache } from './cache-watch.js';
import type { FakeUpstream } from './fake-upstream.js';
import { startGateway, type TestGateway } from './gateway.js';
import { type QuotaWatch, watchQuota } from './quota-watch.js';
import { type UsageWatch, watchUsage } from './usage-watch.js';

/**
 * A gateway with keys required and the response cache on, in front of the cache suites' upstream
 * (cache-fixtures.ts), on an embedded store whose calls a test waits on instead of sleeping:
 * cache lookups and claims, reservations ended, usage records written.
 */
export interface CacheTeamGateway extends TestGateway {
  admin: AdminHttp;
  upstream: FakeUpstream;
  /** How the upstream answers (a test steers it: holds an answer back, fails the next one). */
  control: UpstreamControl;
  cache: CacheWatch;
  quota: QuotaWatch;
  usage: UsageWatch;
  /**
   * Keeps a request the test sends in view until it is answered: `stop` waits for it (a
   * connection that goes idle once closing has begun is not closed for it, so the close would
   * wait out the keep-alive).
   */
  track: <T>(request: Promise<T>) => Promise<T>;
  /** Opens any hold, waits for the tracked requests, then closes the gateway and the upstream. */
  stop: () => Promise<void>;
}

export async function startCacheTeamGateway(extra: Partial<ConfigInput> = {}): Promise<CacheTeamGateway> {
  const control = defaultControl();
  const upstream = cacheTestUpstream(control);
  const baseUrl = `${await upstream.start()}/v1`;
  const store = await MemoryStore.open();
  const watched = {
    cache: watchCache(store.cache),
    quota: watchQuota(store.quota),
    usage: watchUsage(store.usage),
  };
  const gw = await startGateway(
    {
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { up: { type: 'openai', baseUrl, apiKey: 'k' } },
      models: { 'gpt-4o-mini': { backend: 'up' }, 'text-embedding-3-small': { backend: 'up' } },
      cache: { enabled: true },
      ...extra,
    },
    {},
    { store },
  );
  const unanswered = new Set<Promise<unknown>>();
  return Object.assign(gw, watched, {
    admin: new AdminHttp(gw.url),
    upstream,
    control,
    track: <T>(request: Promise<T>) => {
      unanswered.add(request);
      const done = () => unanswered.delete(request);
      request.then(done, done);
      return request;
    },
    stop: async () => {
      control.hold?.open();
      await Promise.allSettled(unanswered);
      await gw.close();
      await upstream.stop();
    },
  });
}

/** A team (with `team`'s limits, budgets...), a key for it, and an SDK client on that key. */
export async function cacheTeamKey(gw: CacheTeamGateway, team: Record<string, unknown> = {}) {
  const created = await gw.admin.createTeam({ name: `cache-${crypto.randomUUID().slice(0, 8)}`, ...team });
  const key = await gw.admin.createKey({ team_id: created.id });
  return {
    teamId: created.id,
    keyId: key.id,
    key: key.key,
    client: new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 }),
  };
}

/** What a team has spent of its first budget, as the admin API says. */
export async function spentTokens(gw: CacheTeamGateway, teamId: string): Promise<number | undefined> {
  const team = await gw.admin.ok<{ standing: { budgets: Array<{ spent_tokens: number }> } }>(
    'GET',
    `/teams/${teamId}`,
  );
  return team.standing.budgets[0]?.spent_tokens;
}

/** One entry of `GET /admin/requests`, as far as these suites read it. */
export interface RecordedRequestEntry {
  request_id: string;
  status: number;
  outcome: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_usd: number;
  estimated: boolean;
  cache: string | null;
}

/** The usage records the gateway wrote so far (wait for them with `gw.usage.recorded` first). */
export async function requestRecords(gw: CacheTeamGateway): Promise<RecordedRequestEntry[]> {
  return (await gw.admin.ok<{ data: RecordedRequestEntry[] }>('GET', '/requests?limit=100')).data;
}
