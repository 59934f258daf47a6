import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../src/registry/key-material.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { chatCompletionFixture } from './support/openai-fixtures.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { deleteKeys, type LeasedDatabase, leaseRedisDatabase, scanKeys } from './support/redis-cluster.js';

const ADMIN_KEY = 'test-admin-key-0123456789';

let redis: TestRedis | undefined;
let database: LeasedDatabase | undefined;
let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;
let gatewayClosed = false;

/** Every plaintext credential the scenario handled: none may be kept, logged or shown. */
const plaintexts: string[] = [];
/** Hashes the admin API must not show either (it shows neither secrets nor hashes). */
const hashes: string[] = [];
/** Bodies of the admin reads (lists, single keys, audit), as text. */
const adminReads: string[] = [];

async function admin(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  if (!gw) throw new Error('no gateway');
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  expect(response.status, `${method} /admin${path}: ${text}`).toBeLessThan(300);
  if (method === 'GET') adminReads.push(text);
  return JSON.parse(text) as Record<string, unknown>;
}

/** A chat completion with `key`, sent the way a client would (three header styles). */
async function chat(key: string, header: 'bearer' | 'api-key' | 'x-api-key' = 'bearer'): Promise<number> {
  if (!gw) throw new Error('no gateway');
  const credentials =
    header === 'bearer'
      ? { authorization: `Bearer ${key}` }
      : header === 'api-key'
        ? { 'api-key': key }
        : { 'x-api-key': key };
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...credentials },
    body: JSON.stringify({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] }),
  });
  await response.arrayBuffer();
  return response.status;
}

/** A key and the pieces of it that would betray it: the whole key, its secret, either end. */
function remember(key: string): void {
  // The public id has no dashes; the base64url secret may.
  const secret = /^tg-[0-9a-z]+-(.+)$/.exec(key)?.[1];
  if (!secret || secret.length < 32) throw new Error(`not a Tollgate key: ${key}`);
  plaintexts.push(key, secret, secret.slice(0, 16), secret.slice(-16));
  hashes.push(hashKey(key));
}

/** Which remembered plaintexts occur in `text`. */
const leaked = (text: string) => [...new Set(plaintexts.filter((secret) => text.includes(secret)))];

/** Everything under `tg:*` in our Redis database, names and values of every type, as text. */
async function redisDump(): Promise<{ text: string; types: Set<string> }> {
  if (!database) throw new Error('no redis');
  const client = database.client;
  const parts: string[] = [];
  const types = new Set<string>();
  for (const name of await scanKeys(client, 'tg:*')) {
    const type = await client.type(name);
    types.add(type);
    parts.push(name);
    if (type === 'string') parts.push((await client.get(name)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await client.hgetall(name)));
    else if (type === 'zset') parts.push(JSON.stringify(await client.zrange(name, '0', '-1', 'WITHSCORES')));
    else if (type === 'list') parts.push(JSON.stringify(await client.lrange(name, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await client.smembers(name)));
    else if (type === 'stream') parts.push(JSON.stringify(await client.xrange(name, '-', '+')));
    else if (type !== 'none') throw new Error(`${name} has type ${type}, which this test cannot read yet`);
  }
  return { text: parts.join('\n'), types };
}

beforeAll(async () => {
  redis = await redisForTests();
  if (!redis) return;
  // Our own database on a possibly shared REDIS_URL, so the scan sees only this gateway's state.
  database = await leaseRedisDatabase(redis.url);
  await deleteKeys(database.client, 'tg:*');
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) =>
    sendJson(res, 200, chatCompletionFixture('upstream-gpt', 'hello')),
  );
  const base = await upstream.start();
  gw = await startGateway({
    ...upstreamConfig(base),
    redis: { url: database.url },
    // No validation cache: a revocation is seen by the very next request.
    auth: { cacheTtlMs: 0 },
    admin: { key: ADMIN_KEY },
  });
  plaintexts.push(ADMIN_KEY);

  // A team with three keys: one used as is, one rotated with grace, one revoked.
  const team = await admin('POST', '/teams', { name: 'Research', models: ['gpt-test'] });
  const issue = async (name: string) => {
    const created = await admin('POST', '/keys', { team_id: team.id, name, owner: 'ops@example.com' });
    const key = String(created.key);
    remember(key);
    return { id: String(created.id), key };
  };
  const plain = await issue('plain');
  const rotating = await issue('rotating');
  const revoking = await issue('revoking');

  expect(await chat(plain.key)).toBe(200);
  expect(await chat(rotating.key, 'api-key')).toBe(200);
  expect(await chat(revoking.key, 'x-api-key')).toBe(200);

  const rotated = await admin('POST', `/keys/${rotating.id}/rotate`, { grace_seconds: 60 });
  const newKey = String(rotated.key);
  remember(newKey);
  expect(await chat(newKey)).toBe(200);
  expect(await chat(rotating.key)).toBe(200); // still in its grace period

  await admin('DELETE', `/keys/${revoking.id}`);
  expect(await chat(revoking.key)).toBe(401);

  // A well-formed key that was never issued (a typo, a guess) is a secret too.
  const unknown = `tg-${plain.id}-${'x'.repeat(43)}`;
  remember(unknown);
  expect(await chat(unknown)).toBe(401);

  await admin('GET', '/teams');
  await admin('GET', `/teams/${team.id}`);
  await admin('GET', '/keys?limit=100');
  await admin('GET', `/keys?limit=1&team_id=${team.id}`);
  for (const { id } of [plain, rotating, revoking]) await admin('GET', `/keys/${id}`);
  let after: string | undefined;
  for (let page = 0; page < 20; page++) {
    const audit = await admin('GET', `/audit?limit=2${after ? `&after=${after}` : ''}`);
    if (!audit.has_more) break;
    after = String(audit.last_id);
  }

  // Closing flushes batched last-used times, so Redis holds everything the gateway writes.
  await gw.close();
  gatewayClosed = true;
});

afterAll(async () => {
  if (!gatewayClosed) await gw?.close();
  await upstream?.stop();
  if (database) {
    await deleteKeys(database.client, 'tg:*');
    await database.release();
  }
  await redis?.stop();
});

describe('no plaintext key is kept, logged or shown (gateway on Redis)', () => {
  it('leaves no plaintext key (nor the admin key) anywhere in Redis', async (context) => {
    if (!database) return context.skip('no Redis available (see the notice above)');
    const { text, types } = await redisDump();
    // The dump did read the records: the hashes of the four issued secrets (current, retired in
    // grace, revoked; not the never-issued one), the audit log and last-used times are there.
    for (const hash of hashes.slice(0, 4)) expect(text).toContain(hash);
    expect([...types]).toEqual(expect.arrayContaining(['string', 'hash', 'zset']));
    expect(text).toContain('tg:{registry}:last-used');
    expect(leaked(text)).toEqual([]);
  });

  it('logs no plaintext key (nor the admin key)', (context) => {
    if (!gw) return context.skip('no Redis available (see the notice above)');
    expect(gw.logs.length).toBeGreaterThan(10);
    expect(leaked(gw.rawLogs())).toEqual([]);
  });

  it('shows neither plaintext keys nor their hashes in GET /admin/keys, /admin/keys/:id or /admin/audit', (context) => {
    if (!gw) return context.skip('no Redis available (see the notice above)');
    const text = adminReads.join('\n');
    expect(text).toContain('key.rotate');
    expect(text).toContain('key.revoke');
    expect(leaked(text)).toEqual([]);
    expect(hashes.filter((hash) => text.includes(hash))).toEqual([]);
  });

  it('never forwards a team key upstream', (context) => {
    if (!upstream) return context.skip('no Redis available (see the notice above)');
    expect(upstream.requests.length).toBe(5);
    const seen = upstream.requests.map((request) => `${JSON.stringify(request.headers)}\n${request.body}`);
    expect(leaked(seen.join('\n'))).toEqual([]);
    expect(upstream.requests.every((r) => r.headers.authorization === 'Bearer sk-upstream-secret-123')).toBe(
      true,
    );
  });
});
