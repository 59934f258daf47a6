import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import {
  AdminHttp,
  type AuditEventObject,
  type ErrorBody,
  type IssuedKeyObject,
  type KeyObject,
  type ListObject,
  TEST_ADMIN_KEY,
  type TeamObject,
} from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * The admin API as docs/admin-api.md describes it: the admin key and nothing else, teams and
 * keys with their validation errors in OpenAI's envelope, cursor pagination, the team's key
 * policy, rotation and revocation, and an audit trail that never holds a secret.
 */

const MODELS: Pick<ConfigInput, 'backends' | 'models'> = {
  backends: { mock: { type: 'mock' } },
  models: { mock: { backend: 'mock' }, 'gpt-test': { backend: 'mock' }, 'org/model-a': { backend: 'mock' } },
};

function gatewayConfig(extra: Partial<ConfigInput> = {}): ConfigInput {
  return { ...MODELS, auth: {}, admin: { key: TEST_ADMIN_KEY }, ...extra };
}

const KEY_FORMAT = /^tg-([0-9a-z]{8,32})-([A-Za-z0-9_-]{22,})$/;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Asserts a 400 naming `param` in the envelope, with no code (docs/admin-api.md). */
function expectInvalid(response: { status: number; body: unknown }, param: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expectEnvelope(response.body, { type: 'invalid_request_error', code: null, param });
}

let gw: TestGateway;
let admin: AdminHttp;
/** Every plaintext key this file was shown: none may ever appear anywhere else. */
const plaintexts: string[] = [];

beforeAll(async () => {
  gw = await startGateway(gatewayConfig());
  admin = new AdminHttp(gw.url);
});

afterAll(async () => {
  await gw?.close();
});

async function issue(input: Record<string, unknown>, via: AdminHttp = admin): Promise<IssuedKeyObject> {
  const issued = await via.createKey(input);
  plaintexts.push(issued.key);
  return issued;
}

describe('admin authentication', () => {
  it('refuses a missing, wrong or team key with 401 invalid_admin_key, and accepts the admin key', async () => {
    const team = await admin.createTeam({ name: 'auth-check' });
    const { key: teamKey } = await issue({ team_id: team.id });
    const attempts: Array<[string, AdminHttp]> = [
      ['no key', new AdminHttp(gw.url, null)],
      ['wrong key', new AdminHttp(gw.url, 'not-the-admin-key-0123456789')],
      ['a team key', new AdminHttp(gw.url, teamKey)],
    ];
    for (const [label, client] of attempts) {
      for (const [method, path] of [
        ['GET', '/teams'],
        ['POST', '/teams'],
        ['GET', `/keys?team_id=${team.id}`],
        ['GET', '/audit'],
      ] as const) {
        const response = await client.call(method, path, method === 'POST' ? { name: 'x' } : undefined);
        expect(response.status, `${label}: ${method} ${path}`).toBe(401);
        expectEnvelope(response.body, {
          type: 'invalid_request_error',
          code: 'invalid_admin_key',
          param: null,
        });
      }
    }
    // A team key as x-api-key is no better than as Bearer.
    const viaHeader = await new AdminHttp(gw.url, null).call('GET', '/teams', undefined, {
      'x-api-key': teamKey,
    });
    expect(viaHeader.status).toBe(401);
    expect((await admin.call('GET', '/teams')).status).toBe(200);
  });
});

describe('teams', () => {
  it('creates with defaults, reads, updates and deletes a team', async () => {
    const before = nowSeconds();
    const created = await admin.createTeam({ name: 'research' });
    expect(created).toEqual({
      id: expect.stringMatching(/^team_/),
      object: 'team',
      name: 'research',
      models: ['*'],
      default_key_policy: null,
      limits: {},
      budgets: [],
      model_limits: {},
      cache: null,
      metadata: {},
      active_keys: 0,
      created_at: expect.any(Number),
      updated_at: expect.any(Number),
    });
    expect(created.created_at).toBeGreaterThanOrEqual(before);
    expect(created.created_at).toBeLessThanOrEqual(nowSeconds());

    // The answer about one team adds where its limits stand (none set here).
    const { standing, ...fetchedTeam } = await admin.ok<Record<string, unknown>>(
      'GET',
      `/teams/${created.id}`,
    );
    expect(standing).toEqual({ budgets: [] });
    expect(fetchedTeam).toEqual(created);

    const updated = await admin.ok<TeamObject>('PATCH', `/teams/${created.id}`, {
      name: 'research-2',
      models: ['mock', 'org/*'],
      default_key_policy: { models: ['mock'], expires_in_seconds: 600 },
      metadata: { cost_center: 42 },
    });
    expect(updated).toMatchObject({
      id: created.id,
      name: 'research-2',
      models: ['mock', 'org/*'],
      default_key_policy: { models: ['mock'], expires_in_seconds: 600 },
      metadata: { cost_center: 42 },
      active_keys: 0,
    });
    // metadata replaces; default_key_policy: null clears; fields not sent stay as they were.
    const cleared = await admin.ok<TeamObject>('PATCH', `/teams/${created.id}`, {
      default_key_policy: null,
      metadata: { owner: 'ml' },
    });
    expect(cleared).toMatchObject({
      name: 'research-2',
      models: ['mock', 'org/*'],
      default_key_policy: null,
      metadata: { owner: 'ml' },
    });

    const deleted = await admin.call('DELETE', `/teams/${created.id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ id: created.id, object: 'team', deleted: true });
    for (const [method, body] of [
      ['GET', undefined],
      ['PATCH', { name: 'x' }],
      ['DELETE', undefined],
    ] as const) {
      const gone = await admin.call(method, `/teams/${created.id}`, body);
      expect(gone.status, method).toBe(404);
      expect((gone.body as ErrorBody).error.code).toBe('team_not_found');
    }
  });

  it('rejects invalid bodies and queries with a 400 that names the field', async () => {
    expectInvalid(await admin.call('POST', '/teams', {}), 'name');
    expectInvalid(await admin.call('POST', '/teams', { name: '' }), 'name');
    expectInvalid(await admin.call('POST', '/teams', { name: 7 }), 'name');
    expectInvalid(await admin.call('POST', '/teams', { name: 'x', models: [] }), 'models');
    expectInvalid(await admin.call('POST', '/teams', { name: 'x', models: 'mock' }), 'models');
    expectInvalid(await admin.call('POST', '/teams', { name: 'x', models: ['mock', 3] }), 'models[1]');
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'x', default_key_policy: { expires_in_seconds: -5 } }),
      'default_key_policy.expires_in_seconds',
    );
    expectInvalid(await admin.call('POST', '/teams', { name: 'x', metadata: 'nope' }), 'metadata');
    // Unknown fields are refused, not ignored (a typo must not silently do nothing).
    expectInvalid(await admin.call('POST', '/teams', { name: 'x', colour: 'red' }), 'colour');
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'x', default_key_policy: { model: ['mock'] } }),
      'default_key_policy.model',
    );
    const team = await admin.createTeam({ name: 'valid' });
    expectInvalid(await admin.call('PATCH', `/teams/${team.id}`, { name: '' }), 'name');
    expectInvalid(await admin.call('PATCH', `/teams/${team.id}`, { active_keys: 3 }), 'active_keys');
    expectInvalid(await admin.call('GET', '/teams?limit=0'), 'limit');
    expectInvalid(await admin.call('GET', '/teams?limit=101'), 'limit');
    expectInvalid(await admin.call('GET', '/teams?limit=ten'), 'limit');
    expectInvalid(await admin.call('GET', '/teams?page=2'), 'page');
    expectInvalid(await admin.call('DELETE', `/teams/${team.id}?force=yes`), 'force');
    const notObject = await admin.call('POST', '/teams', ['name']);
    expect(notObject.status).toBe(400);
    expectEnvelope(notObject.body, { type: 'invalid_request_error', code: null, param: null });
    // Nothing half-applied.
    expect((await admin.ok<TeamObject>('GET', `/teams/${team.id}`)).name).toBe('valid');
  });

  it("refuses a default_key_policy whose models lie outside the team's own", async () => {
    // Such a policy makes every key created without explicit models fail with
    // model_not_allowed on a `models` field the caller never sent; refuse it where it is set.
    const response = await admin.call('POST', '/teams', {
      name: 'bad-policy',
      models: ['mock'],
      default_key_policy: { models: ['gpt-test'] },
    });
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect((response.body as ErrorBody).error.param).toBe('default_key_policy.models');
  });

  it('shows active_keys on the answers about one team (docs/admin-api.md: not on list pages)', async () => {
    const team = await admin.createTeam({ name: 'counted' });
    await issue({ team_id: team.id });
    expect((await admin.ok<TeamObject>('GET', `/teams/${team.id}`)).active_keys).toBe(1);
    const page = await admin.ok<ListObject<TeamObject>>('GET', `/teams?limit=100`);
    expect(page.data.find((t) => t.id === team.id)?.active_keys).toBeUndefined();
  });

  it('refuses to delete a team with active keys (409) unless forced, which revokes them', async () => {
    const team = await admin.createTeam({ name: 'doomed' });
    const first = await issue({ team_id: team.id });
    const second = await issue({ team_id: team.id });
    const alreadyRevoked = await issue({ team_id: team.id });
    await admin.revokeKey(alreadyRevoked.id);

    const refused = await admin.call('DELETE', `/teams/${team.id}`);
    expect(refused.status).toBe(409);
    expectEnvelope(refused.body, {
      type: 'invalid_request_error',
      code: 'team_has_active_keys',
      param: null,
    });
    expect((await admin.ok<TeamObject>('GET', `/teams/${team.id}`)).active_keys).toBe(2);
    expect((await admin.getKey(first.id)).status).toBe('active');

    const notForced = await admin.call('DELETE', `/teams/${team.id}?force=false`);
    expect(notForced.status).toBe(409);

    const forced = await admin.call('DELETE', `/teams/${team.id}?force=true`);
    expect(forced.status).toBe(200);
    expect(forced.body).toEqual({ id: team.id, object: 'team', deleted: true });
    for (const key of [first, second]) {
      const after = await admin.getKey(key.id);
      expect(after.status).toBe('revoked');
      expect(after.revoked_at).toEqual(expect.any(Number));
    }
    expect((await admin.call('GET', `/teams/${team.id}`)).status).toBe(404);
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: first.key, maxRetries: 0 });
    await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('pagination', () => {
  it('pages teams oldest first with limit, after, has_more, first_id and last_id', async () => {
    const fresh = await startGateway(gatewayConfig());
    try {
      const api = new AdminHttp(fresh.url);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await api.createTeam({ name: `page-${i}` })).id);

      const all = await api.ok<ListObject<TeamObject>>('GET', '/teams');
      expect(all.object).toBe('list');
      expect(all.data.map((t) => t.id)).toEqual(ids);
      expect(all).toMatchObject({ first_id: ids[0], last_id: ids[4], has_more: false });

      const first = await api.ok<ListObject<TeamObject>>('GET', '/teams?limit=2');
      expect(first.data.map((t) => t.id)).toEqual(ids.slice(0, 2));
      expect(first).toMatchObject({ first_id: ids[0], last_id: ids[1], has_more: true });
      const second = await api.ok<ListObject<TeamObject>>('GET', `/teams?limit=2&after=${first.last_id}`);
      expect(second.data.map((t) => t.id)).toEqual(ids.slice(2, 4));
      expect(second).toMatchObject({ first_id: ids[2], last_id: ids[3], has_more: true });
      const third = await api.ok<ListObject<TeamObject>>('GET', `/teams?limit=2&after=${second.last_id}`);
      expect(third.data.map((t) => t.id)).toEqual(ids.slice(4));
      expect(third).toMatchObject({ first_id: ids[4], last_id: ids[4], has_more: false });
      const past = await api.ok<ListObject<TeamObject>>('GET', `/teams?after=${ids[4]}`);
      expect(past).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
      // An exact fit says there is no more.
      const exact = await api.ok<ListObject<TeamObject>>('GET', '/teams?limit=5');
      expect(exact.has_more).toBe(false);
    } finally {
      await fresh.close();
    }
  });

  it('lists stay oldest first, and pages cover every item once, for items made in the same millisecond', async () => {
    // Ids are "sortable by creation time"; ties within one millisecond must not reorder the
    // audit trail or make a page walk skip or repeat events. Date is frozen so every record
    // below is created in the same millisecond, deterministically.
    const fresh = await startGateway(gatewayConfig());
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const api = new AdminHttp(fresh.url);
      const team = await api.createTeam({ name: 'same-ms' });
      const keyIds: string[] = [];
      for (let i = 0; i < 9; i++) keyIds.push((await issue({ team_id: team.id, name: `k${i}` }, api)).id);

      const keys = await api.ok<ListObject<KeyObject>>('GET', `/keys?team_id=${team.id}&limit=100`);
      expect.soft(keys.data.map((k) => k.id)).toEqual(keyIds);

      const audit = await api.ok<ListObject<AuditEventObject>>('GET', '/audit?limit=100');
      expect.soft(audit.data.map((e) => e.target_id)).toEqual([team.id, ...keyIds]);
      const walked: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 20; page++) {
        const query: string = after ? `&after=${after}` : '';
        const next: ListObject<AuditEventObject> = await api.ok('GET', `/audit?limit=1${query}`);
        walked.push(...next.data.map((e) => e.id));
        if (!next.has_more) break;
        after = next.last_id;
      }
      expect.soft(walked).toEqual(audit.data.map((e) => e.id));
    } finally {
      vi.useRealTimers();
      await fresh.close();
    }
  });
});

describe('keys', () => {
  let team: TeamObject;

  beforeAll(async () => {
    team = await admin.createTeam({ name: 'keys', models: ['mock', 'gpt-test'] });
  });

  it('creates a key whose plaintext (tg-<id>-<secret>) appears only in the create response', async () => {
    const before = nowSeconds();
    const issued = await issue({
      team_id: team.id,
      name: 'ci',
      owner: 'alice@example.com',
      metadata: { purpose: 'ci' },
    });
    const match = KEY_FORMAT.exec(issued.key);
    expect(match?.[1]).toBe(issued.id);
    expect(issued).toEqual({
      id: issued.id,
      object: 'api_key',
      name: 'ci',
      owner: 'alice@example.com',
      team_id: team.id,
      models: null,
      expires_at: null,
      limits: {},
      budgets: [],
      cache: null,
      disabled: false,
      revoked_at: null,
      status: 'active',
      metadata: { purpose: 'ci' },
      created_at: expect.any(Number),
      updated_at: expect.any(Number),
      last_used_at: null,
      preview: `tg-${issued.id}-…`,
      key: issued.key,
    });
    expect(issued.created_at).toBeGreaterThanOrEqual(before);

    const { key: _plaintext, ...publicView } = issued;
    const fetched = await admin.call<KeyObject>('GET', `/keys/${issued.id}`);
    const { standing, ...fetchedKey } = fetched.body as unknown as Record<string, unknown>;
    expect(standing).toEqual({ budgets: [] });
    expect(fetchedKey).toEqual(publicView);
    const listed = await admin.call<ListObject<KeyObject>>('GET', `/keys?team_id=${team.id}`);
    expect(listed.body.data.find((k) => k.id === issued.id)).toEqual(publicView);
    const secret = match?.[2] ?? '!';
    for (const text of [JSON.stringify(fetched.body), JSON.stringify(listed.body)]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(sha256(issued.key));
      expect(text).not.toMatch(/"(key|hash|secret)"/);
    }

    const other = await admin.createTeam({ name: 'keys-other' });
    await issue({ team_id: other.id });
    const onlyThisTeam = await admin.ok<ListObject<KeyObject>>('GET', `/keys?team_id=${team.id}&limit=100`);
    expect(onlyThisTeam.data.length).toBeGreaterThan(0);
    expect(onlyThisTeam.data.every((k) => k.team_id === team.id)).toBe(true);
    const everyTeam = await admin.ok<ListObject<KeyObject>>('GET', '/keys?limit=100');
    expect(everyTeam.data.some((k) => k.team_id === other.id)).toBe(true);
  });

  it('pages a team key list', async () => {
    const paged = await admin.createTeam({ name: 'paged-keys' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await issue({ team_id: paged.id })).id);
    const first = await admin.ok<ListObject<KeyObject>>('GET', `/keys?team_id=${paged.id}&limit=2`);
    expect(first).toMatchObject({ first_id: ids[0], last_id: ids[1], has_more: true });
    const second = await admin.ok<ListObject<KeyObject>>(
      'GET',
      `/keys?team_id=${paged.id}&limit=2&after=${first.last_id}`,
    );
    expect(second.data.map((k) => k.id)).toEqual([ids[2]]);
    expect(second.has_more).toBe(false);
  });

  it('updates name, owner, models, expires_at, disabled and metadata', async () => {
    const issued = await issue({ team_id: team.id, name: 'before', metadata: { a: 1 } });
    const expiresAt = nowSeconds() + 3_600;
    const patched = await admin.patchKey(issued.id, {
      name: 'after',
      owner: 'bob',
      models: ['mock'],
      expires_at: expiresAt,
      disabled: true,
      metadata: { b: 2 },
    });
    expect(patched).toMatchObject({
      id: issued.id,
      name: 'after',
      owner: 'bob',
      models: ['mock'],
      expires_at: expiresAt,
      disabled: true,
      status: 'disabled',
      metadata: { b: 2 },
    });
    expect(patched).not.toHaveProperty('key');
    const { standing: _standing, ...fetchedPatched } = (await admin.getKey(issued.id)) as unknown as Record<
      string,
      unknown
    >;
    expect(fetchedPatched).toEqual(patched);

    const reverted = await admin.patchKey(issued.id, {
      name: null,
      owner: null,
      models: null,
      expires_at: null,
      disabled: false,
    });
    expect(reverted).toMatchObject({
      name: null,
      owner: null,
      models: null,
      expires_at: null,
      disabled: false,
      status: 'active',
      metadata: { b: 2 },
    });
    const expired = await admin.patchKey(issued.id, { expires_at: nowSeconds() - 10 });
    expect(expired.status).toBe('expired');
  });

  it("refuses models outside the team's with 400 model_not_allowed (param models)", async () => {
    for (const models of [['org/model-a'], ['mock', 'org/*'], ['*']]) {
      const response = await admin.call('POST', '/keys', { team_id: team.id, models });
      expect(response.status, JSON.stringify(models)).toBe(400);
      expectEnvelope(response.body, {
        type: 'invalid_request_error',
        code: 'model_not_allowed',
        param: 'models',
      });
    }
    const issued = await issue({ team_id: team.id, models: ['gpt-test'] });
    const patch = await admin.call('PATCH', `/keys/${issued.id}`, { models: ['org/model-a'] });
    expect(patch.status).toBe(400);
    expectEnvelope(patch.body, { type: 'invalid_request_error', code: 'model_not_allowed', param: 'models' });
    expect((await admin.getKey(issued.id)).models).toEqual(['gpt-test']);
    // Patterns inside the team's patterns are fine.
    const wide = await admin.createTeam({ name: 'wide', models: ['org/*'] });
    expect((await issue({ team_id: wide.id, models: ['org/model-a'] })).models).toEqual(['org/model-a']);
  });

  it('rejects invalid key bodies, unknown teams and unknown keys', async () => {
    expectInvalid(await admin.call('POST', '/keys', {}), 'team_id');
    expectInvalid(
      await admin.call('POST', '/keys', { team_id: team.id, expires_at: 'tomorrow' }),
      'expires_at',
    );
    expectInvalid(await admin.call('POST', '/keys', { team_id: team.id, expires_at: 1.5 }), 'expires_at');
    expectInvalid(await admin.call('POST', '/keys', { team_id: team.id, key: 'tg-mine' }), 'key');
    const issued = await issue({ team_id: team.id });
    expectInvalid(await admin.call('PATCH', `/keys/${issued.id}`, { team_id: 'team_other' }), 'team_id');
    expectInvalid(await admin.call('PATCH', `/keys/${issued.id}`, { disabled: 'yes' }), 'disabled');
    expectInvalid(
      await admin.call('POST', `/keys/${issued.id}/rotate`, { grace_seconds: -1 }),
      'grace_seconds',
    );
    expectInvalid(await admin.call('GET', `/keys?team=${team.id}`), 'team');

    const noTeam = await admin.call('POST', '/keys', { team_id: 'team_missing' });
    expect(noTeam.status).toBe(404);
    expect((noTeam.body as ErrorBody).error.code).toBe('team_not_found');
    for (const [method, path, body] of [
      ['GET', '/keys/nokey12345', undefined],
      ['PATCH', '/keys/nokey12345', { name: 'x' }],
      ['POST', '/keys/nokey12345/rotate', {}],
      ['DELETE', '/keys/nokey12345', undefined],
    ] as const) {
      const response = await admin.call(method, path, body);
      expect(response.status, `${method} ${path}`).toBe(404);
      expectEnvelope(response.body, { type: 'invalid_request_error', code: 'key_not_found', param: null });
    }
  });

  it("applies the team's default_key_policy to keys created without their own settings", async () => {
    const policyTeam = await admin.createTeam({
      name: 'policy',
      models: ['mock', 'gpt-test'],
      default_key_policy: { models: ['mock'], expires_in_seconds: 3_600 },
    });
    const before = nowSeconds();
    const defaulted = await issue({ team_id: policyTeam.id });
    expect(defaulted.models).toEqual(['mock']);
    expect(defaulted.expires_at).toBeGreaterThanOrEqual(before + 3_600);
    expect(defaulted.expires_at).toBeLessThanOrEqual(nowSeconds() + 3_600);

    const explicitExpiry = nowSeconds() + 60;
    const explicit = await issue({
      team_id: policyTeam.id,
      models: ['gpt-test'],
      expires_at: explicitExpiry,
    });
    expect(explicit).toMatchObject({ models: ['gpt-test'], expires_at: explicitExpiry });
    // null says "no list of its own, no expiry": the team's models, for good.
    const opened = await issue({ team_id: policyTeam.id, models: null, expires_at: null });
    expect(opened).toMatchObject({ models: null, expires_at: null });
  });

  it('rotates to a new secret for the same key, and revokes', async () => {
    const issued = await issue({ team_id: team.id, name: 'rotating' });
    const rotated = await admin.rotateKey(issued.id);
    plaintexts.push(rotated.key);
    expect(rotated.id).toBe(issued.id);
    expect(rotated.key).not.toBe(issued.key);
    expect(KEY_FORMAT.exec(rotated.key)?.[1]).toBe(issued.id);
    expect(rotated).toMatchObject({ object: 'api_key', status: 'active', name: 'rotating' });
    expect((await admin.getKey(issued.id)).status).toBe('active');

    const client = (key: string) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    await expect(client(rotated.key).models.list()).resolves.toBeDefined();

    const revoked = await admin.revokeKey(issued.id);
    expect(revoked).toMatchObject({ id: issued.id, status: 'revoked', revoked_at: expect.any(Number) });
    expect(revoked).not.toHaveProperty('key');
    expect((await admin.getKey(issued.id)).status).toBe('revoked');
    // Revoking twice keeps the first revocation time.
    expect((await admin.revokeKey(issued.id)).revoked_at).toBe(revoked.revoked_at);
  });
});

describe('audit', () => {
  it('records every change with before/after and never a secret', async () => {
    const team = await admin.createTeam({ name: 'audited', models: ['mock'] });
    await admin.ok('PATCH', `/teams/${team.id}`, { name: 'audited-2' });
    const issued = await issue({ team_id: team.id, name: 'audited-key' });
    await admin.patchKey(issued.id, { disabled: true });
    const rotated = await admin.rotateKey(issued.id, { grace_seconds: 60 });
    plaintexts.push(rotated.key);
    await admin.revokeKey(issued.id);
    await admin.ok('DELETE', `/teams/${team.id}`, undefined, 200);

    const events: AuditEventObject[] = [];
    let after: string | null = null;
    for (let page = 0; page < 100; page++) {
      const query: string = after ? `&after=${after}` : '';
      const next: ListObject<AuditEventObject> = await admin.ok('GET', `/audit?limit=50${query}`);
      events.push(...next.data);
      if (!next.has_more) break;
      after = next.last_id;
    }
    const mine = events.filter((e) => e.target_id === team.id || e.target_id === issued.id);
    expect(mine.map((e) => e.action)).toEqual([
      'team.create',
      'team.update',
      'key.create',
      'key.update',
      'key.rotate',
      'key.revoke',
      'team.delete',
    ]);
    for (const event of mine) {
      expect(event).toMatchObject({
        id: expect.any(String),
        object: 'audit_event',
        created_at: expect.any(Number),
        actor: 'admin',
        target_type: event.action.startsWith('team.') ? 'team' : 'api_key',
      });
    }
    const [teamCreate, teamUpdate, keyCreate, keyUpdate, keyRotate, keyRevoke, teamDelete] = mine;
    expect(teamCreate?.before).toBeNull();
    expect(teamCreate?.after).toMatchObject({ id: team.id, object: 'team', name: 'audited' });
    expect(teamUpdate?.before).toMatchObject({ name: 'audited' });
    expect(teamUpdate?.after).toMatchObject({ name: 'audited-2' });
    expect(keyCreate?.before).toBeNull();
    expect(keyCreate?.after).toMatchObject({ id: issued.id, object: 'api_key', status: 'active' });
    expect(keyUpdate?.before).toMatchObject({ disabled: false, status: 'active' });
    expect(keyUpdate?.after).toMatchObject({ disabled: true, status: 'disabled' });
    expect(keyRotate?.before).toMatchObject({ id: issued.id });
    expect(keyRotate?.after).toMatchObject({ id: issued.id });
    expect(keyRevoke?.before).toMatchObject({ revoked_at: null });
    expect(keyRevoke?.after).toMatchObject({ status: 'revoked', revoked_at: expect.any(Number) });
    expect(teamDelete?.before).toMatchObject({ id: team.id, name: 'audited-2' });
    expect(teamDelete?.after).toBeNull();

    // No secret of any kind, from any change in this file: no plaintext, no secret part, no hash.
    const text = JSON.stringify(events);
    expect(plaintexts.length).toBeGreaterThan(5);
    for (const plaintext of plaintexts) {
      expect(text).not.toContain(plaintext);
      expect(text).not.toContain(KEY_FORMAT.exec(plaintext)?.[2] ?? '!');
      expect(text).not.toContain(sha256(plaintext));
    }
    expect(text).not.toContain(TEST_ADMIN_KEY);
    expect(text).not.toMatch(/"(hash|retiredHashes|retired_hashes|key|secret)"/);
  });
});

const stores = [{ store: 'memory' as const }, { store: 'redis' as const }];

describe.each(stores)('last_used_at ($store store)', ({ store }) => {
  let redis: TestRedis | undefined;
  let unavailable = false;

  beforeAll(async () => {
    if (store === 'redis') {
      redis = await redisForTests();
      unavailable = !redis;
    }
  });
  afterAll(async () => {
    await redis?.stop();
  });
  beforeEach((context) => {
    if (unavailable) context.skip('no Redis available (see the notice above)');
  });

  it('is set after the key is used (written in batches, and when the gateway closes)', async () => {
    // The same state behind both gateways: the data directory, or the Redis.
    const config = gatewayConfig({
      dataDir: mkdtempSync(join(tmpdir(), 'tollgate-admin-last-used-')),
      ...(redis ? { redis: { url: redis.url } } : {}),
    });
    const first = await startGateway(config);
    let reopened: TestGateway | undefined;
    try {
      const api = new AdminHttp(first.url);
      const team = await api.createTeam({ name: `last-used-${store}` });
      const used = await issue({ team_id: team.id }, api);
      const unused = await issue({ team_id: team.id }, api);
      const usedAt = nowSeconds();
      await new OpenAI({ baseURL: first.baseURL, apiKey: used.key, maxRetries: 0 }).models.list();
      // Closing flushes the batch that would otherwise wait for the 5 s timer.
      await first.close();
      reopened = await startGateway(config);
      const reader = new AdminHttp(reopened.url);
      const key = await reader.getKey(used.id);
      expect(key.last_used_at).toBeGreaterThanOrEqual(usedAt);
      expect(key.last_used_at).toBeLessThanOrEqual(nowSeconds());
      expect((await reader.getKey(unused.id)).last_used_at).toBeNull();
      const listed = await reader.ok<ListObject<KeyObject>>('GET', `/keys?team_id=${team.id}`);
      expect(listed.data.find((k) => k.id === used.id)?.last_used_at).toBe(key.last_used_at);
    } finally {
      await first.close().catch(() => {});
      await reopened?.close();
    }
  });
});

describe('optional admin bodies', () => {
  it('rotate takes an empty JSON body (curl -X POST -H content-type: application/json) as no options', async () => {
    const gw = await startGateway({
      auth: {},
      admin: { key: 'test-admin-key-0123456789' },
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    try {
      const headers = {
        authorization: 'Bearer test-admin-key-0123456789',
        'content-type': 'application/json',
      };
      const team = (await (
        await fetch(`${gw.url}/admin/teams`, { method: 'POST', headers, body: '{"name":"t"}' })
      ).json()) as { id: string };
      const key = (await (
        await fetch(`${gw.url}/admin/keys`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ team_id: team.id }),
        })
      ).json()) as { id: string; key: string };
      const rotated = await fetch(`${gw.url}/admin/keys/${key.id}/rotate`, { method: 'POST', headers });
      expect(rotated.status).toBe(200);
      expect(((await rotated.json()) as { key: string }).key).not.toBe(key.key);
      const broken = await fetch(`${gw.url}/admin/keys/${key.id}/rotate`, {
        method: 'POST',
        headers,
        body: '{oops',
      });
      expect(broken.status).toBe(400);
    } finally {
      await gw.close();
    }
  });
});
