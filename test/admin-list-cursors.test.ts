import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AdminHttp,
  type AuditEventObject,
  type ErrorBody,
  type KeyObject,
  type ListObject,
  TEST_ADMIN_KEY,
  type TeamObject,
} from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { hasRedisServerBinary, startRedisServer, type TestRedis } from './support/redis.js';

/**
 * The admin API's page cursors: an `after` (or `before` on /admin/requests) that cannot be one
 * of the list's ids is a 400 naming it, as OpenAI answers a bad cursor, never a silent first
 * page (or an empty one). A real id pages on from it, even once it is gone. The Redis case runs
 * on a redis-server of its own: pages are compared whole, so nothing else may add teams.
 */

const stores = [{ store: 'memory' as const }, { store: 'redis' as const }];

describe.each(stores)('admin list cursors ($store store)', ({ store }) => {
  let redis: TestRedis | undefined;
  let gw: TestGateway;
  let admin: AdminHttp;
  let unavailable = false;
  const teams: TeamObject[] = [];
  const keys: KeyObject[] = [];

  beforeAll(async () => {
    if (store === 'redis') {
      if (!hasRedisServerBinary()) {
        process.stderr.write(
          '\n!!! ADMIN LIST CURSORS ON REDIS SKIPPED: redis-server is not on PATH. !!!\n\n',
        );
        unavailable = true;
        return;
      }
      redis = await startRedisServer();
    }
    gw = await startGateway({
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
      auth: { cacheTtlMs: 0 },
      admin: { key: TEST_ADMIN_KEY },
      ...(redis ? { redis: { url: redis.url } } : {}),
    });
    admin = new AdminHttp(gw.url);
    for (let i = 0; i < 3; i++) {
      const team = await admin.createTeam({ name: `cursors-${store}-${crypto.randomUUID().slice(0, 8)}` });
      teams.push(team);
      keys.push(await admin.createKey({ team_id: team.id }));
    }
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  beforeEach((context) => {
    if (unavailable) context.skip('redis-server is not on PATH (see the notice above)');
  });

  const refusals = [
    { path: '/teams?after=nope', param: 'after', value: 'nope' },
    { path: '/teams?after=TEAM_0ABC', param: 'after', value: 'TEAM_0ABC' },
    { path: '/keys?after=nope', param: 'after', value: 'nope' },
    { path: '/keys?after=team_0mi9x3k2a000f8a1b2c3', param: 'after', value: 'team_0mi9x3k2a000f8a1b2c3' },
    { path: '/audit?after=nope', param: 'after', value: 'nope' },
    { path: '/requests?before=nope', param: 'before', value: 'nope' },
  ];

  it.each(refusals)('GET $path is a 400 naming $param', async ({ path, param, value }) => {
    const response = await admin.call<ErrorBody>('GET', path);
    expect(response.status).toBe(400);
    expect(response.body.error).toEqual({
      message: `Invalid value for '${param}': '${value}' is not an id of this list; pass a page's last_id.`,
      type: 'invalid_request_error',
      param,
      code: null,
    });
  });

  it('a long cursor is shown cut short', async () => {
    const response = await admin.call<ErrorBody>('GET', `/teams?after=${'x'.repeat(300)}`);
    expect(response.status).toBe(400);
    expect(response.body.error.message).toContain(`'${'x'.repeat(64)}...'`);
    expect(response.body.error.param).toBe('after');
  });

  it("a page's last_id pages on, on teams, keys and the audit log", async () => {
    const first = await admin.ok<ListObject<TeamObject>>('GET', '/teams?limit=1');
    const next = await admin.ok<ListObject<TeamObject>>('GET', `/teams?limit=1&after=${first.last_id}`);
    expect(next.data[0]?.id).toBe(teams[1]?.id);

    const keyPage = await admin.ok<ListObject<KeyObject>>('GET', `/keys?limit=1&after=${keys[0]?.id}`);
    expect(keyPage.data[0]?.id).toBe(keys[1]?.id);

    const audit = await admin.ok<ListObject<AuditEventObject>>('GET', '/audit?limit=2');
    const auditNext = await admin.ok<ListObject<AuditEventObject>>(
      'GET',
      `/audit?limit=2&after=${audit.last_id}`,
    );
    expect(auditNext.data.length).toBeGreaterThan(0);
    expect(auditNext.data.map((event) => event.id)).not.toContain(audit.last_id);
  });

  it('the id of a team deleted since still pages on from where it was', async () => {
    const gone = await admin.createTeam({ name: `cursors-gone-${store}-${crypto.randomUUID().slice(0, 8)}` });
    const after = await admin.createTeam({
      name: `cursors-after-${store}-${crypto.randomUUID().slice(0, 8)}`,
    });
    await admin.ok('DELETE', `/teams/${gone.id}`, undefined, 200);
    const page = await admin.ok<ListObject<TeamObject>>('GET', `/teams?limit=1&after=${gone.id}`);
    expect(page.data.map((team) => team.id)).toEqual([after.id]);
  });
});
