import type { FastifyInstance, FastifyRequest } from 'fastify';
import { adminAuthHook } from '../../admin/admin-auth.js';
import type { AdminKey } from '../../admin/admin-key.js';
import { adminOpenApiJson } from '../../admin/admin-openapi.js';
import type { Backend } from '../../backends/backend.js';
import { refreshBackendModels } from '../../backends/local-servers/refresh-backend.js';
import { cacheScope, scopeOwner } from '../../cache/cache-scope.js';
import { InvalidRequestError } from '../../errors.js';
import type { FailedAuthLimiter } from '../../pipeline/failed-auth-limiter.js';
import type { QuotaStage } from '../../pipeline/quota.js';
import type { Metrics } from '../../plugins/metrics.js';
import { publicAuditEvent, publicKey, publicTeam } from '../../registry/public-objects.js';
import type { Page } from '../../registry/records.js';
import type { Registry } from '../../registry/registry.js';
import type { DeploymentReport } from '../../routing/deployment-report.js';
import {
  cachePurgeQuerySchema,
  cacheQuerySchema,
  createKeySchema,
  createTeamSchema,
  deleteTeamQuerySchema,
  listQuerySchema,
  requestsQuerySchema,
  rotateKeySchema,
  updateKeySchema,
  updateTeamSchema,
  usageQuerySchema,
} from '../../schemas/admin.js';
import { parseInput, parseRequestBody } from '../../schemas/parse-input.js';
import type { CacheScopeStats, CacheStore } from '../../store/cache-store.js';
import { utcDay } from '../../usage/usage-record.js';
import { groupUsage, publicRequest } from '../../usage/usage-report.js';
import { AUDIT_EVENT_IDS, assertCursor, KEY_IDS, TEAM_IDS } from './list-cursors.js';

export interface AdminRouteOptions {
  registry: Registry;
  /** Current spend and what is left, on the answers about one team or key. */
  quota: QuotaStage;
  adminKey: AdminKey;
  /** Failed admin authentications per client IP (apart from /v1's). */
  failedAuth: FailedAuthLimiter;
  /** The gateway's version, for the OpenAPI document. */
  version: string;
  /** ③ the response cache's entries (stats, purge). */
  cache: CacheStore;
  metrics: Metrics;
  /** ④ every configured deployment: circuit (shared), in flight and latency (this instance). */
  deployments: DeploymentReport;
  /** The configured backends: a local server's model list is refreshed on demand. */
  backends?: { all(): Backend[] };
  clock: () => number;
}

/** The one cache scope a query names (team, key or global), or undefined for all of them. */
function cacheScopeOf(query: {
  team_id?: string | undefined;
  key_id?: string | undefined;
  scope?: 'global' | undefined;
}) {
  const named = [
    query.team_id && cacheScope('team', query.team_id),
    query.key_id && cacheScope('key', query.key_id),
    query.scope && cacheScope(query.scope),
  ];
  const scopes = named.filter((scope): scope is string => Boolean(scope));
  if (scopes.length > 1)
    throw new InvalidRequestError('Name one of team_id, key_id or scope=global, not several.', 'team_id');
  return scopes[0];
}

function publicCacheStats(stats: CacheScopeStats): Record<string, unknown> {
  return {
    scope: stats.scope,
    ...scopeOwner(stats.scope),
    entries: stats.entries,
    bytes: stats.bytes,
  };
}

/** The longest range one usage report covers (usage days are kept 400 days on Redis). */
const MAX_USAGE_DAYS = 400;

/** The audit trail's "who": the admin key is the only admin identity, so say how it arrived. */
const ACTOR = 'admin';

function list<T extends { id: string }>(page: Page<T>, show: (item: T) => Record<string, unknown>) {
  return {
    object: 'list',
    data: page.items.map(show),
    first_id: page.items[0]?.id ?? null,
    last_id: page.items.at(-1)?.id ?? null,
    has_more: page.hasMore,
  };
}

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

/** `/admin`: teams, keys and the audit log, behind the admin key (never a team key). */
export async function adminRoutes(app: FastifyInstance, options: AdminRouteOptions): Promise<void> {
  const { registry, adminKey, quota } = options;

  // Some admin calls take an optional body (rotate): an empty JSON body means "no options".
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    json(request, body.toString(), done);
  });

  // The description of the API is public (clients are generated from it); everything else needs the key.
  app.get('/openapi.json', (_request, reply) => {
    reply.type('application/json').send(adminOpenApiJson(options.version));
  });

  app.addHook(
    'onRequest',
    adminAuthHook(adminKey, options.failedAuth, (url) => url === '/admin/openapi.json'),
  );

  const withLastUsed = async (keys: Parameters<typeof publicKey>[0][]) => {
    const used = await registry.lastUsed(keys.map((key) => key.id));
    return (key: Parameters<typeof publicKey>[0]) => publicKey(key, used.get(key.id) ?? null);
  };

  app.post('/teams', async (request, reply) => {
    const team = await registry.createTeam(parseRequestBody(createTeamSchema, request.body), ACTOR);
    return reply.code(201).send(publicTeam(team, 0));
  });
  app.get('/teams', async (request) => {
    const query = parseInput(listQuerySchema.omit({ team_id: true }), request.query);
    assertCursor('after', query.after, TEAM_IDS);
    return list(await registry.listTeams(query), (team) => publicTeam(team));
  });
  app.get('/teams/:id', async (request: IdRequest) => {
    const team = await registry.getTeam(request.params.id);
    const standing = await quota.standing(team.id, `team:${team.id}`, team.limits ?? {}, team.budgets ?? []);
    // Each model limit is a scope of its own (`model:<name>`, as the quota stage names it).
    const perModel = Object.entries(team.modelLimits ?? {});
    const models = await Promise.all(
      perModel.map(async ([name, own]) => [
        name,
        await quota.standing(team.id, `model:${name}`, own.limits ?? {}, own.budgets ?? []),
      ]),
    );
    return {
      ...publicTeam(team, (await registry.activeKeys(team.id)).length),
      standing: perModel.length > 0 ? { ...standing, model_limits: Object.fromEntries(models) } : standing,
    };
  });
  app.patch('/teams/:id', async (request: IdRequest) => {
    const team = await registry.updateTeam(
      request.params.id,
      parseRequestBody(updateTeamSchema, request.body),
      ACTOR,
    );
    return publicTeam(team, (await registry.activeKeys(team.id)).length);
  });
  app.delete('/teams/:id', async (request: IdRequest) => {
    const { force } = parseInput(deleteTeamQuerySchema, request.query);
    await registry.deleteTeam(request.params.id, force === 'true', ACTOR);
    return { id: request.params.id, object: 'team', deleted: true };
  });

  app.post('/keys', async (request, reply) => {
    const issued = await registry.createKey(parseRequestBody(createKeySchema, request.body), ACTOR);
    return reply.code(201).send({ ...publicKey(issued.record), key: issued.key });
  });
  app.get('/keys', async (request) => {
    const query = parseInput(listQuerySchema, request.query);
    assertCursor('after', query.after, KEY_IDS);
    const page = await registry.listKeys({ limit: query.limit, after: query.after, teamId: query.team_id });
    return list(page, await withLastUsed(page.items));
  });
  app.get('/keys/:id', async (request: IdRequest) => {
    const key = await registry.getKey(request.params.id);
    const standing = await quota.standing(key.teamId, `key:${key.id}`, key.limits ?? {}, key.budgets ?? []);
    return { ...(await withLastUsed([key]))(key), standing };
  });
  app.patch('/keys/:id', async (request: IdRequest) => {
    const key = await registry.updateKey(
      request.params.id,
      parseRequestBody(updateKeySchema, request.body),
      ACTOR,
    );
    return (await withLastUsed([key]))(key);
  });
  app.post('/keys/:id/rotate', async (request: IdRequest) => {
    const body = parseRequestBody(rotateKeySchema, request.body ?? {});
    const issued = await registry.rotateKey(request.params.id, body.grace_seconds ?? 0, ACTOR);
    return { ...publicKey(issued.record), key: issued.key };
  });
  app.delete('/keys/:id', async (request: IdRequest) => {
    const key = await registry.revokeKey(request.params.id, ACTOR);
    return (await withLastUsed([key]))(key);
  });

  app.get('/usage', async (request) => {
    const query = parseInput(usageQuerySchema, request.query);
    const to = query.to ?? utcDay(Date.now());
    const from = query.from ?? utcDay(Date.parse(`${to}T00:00:00Z`) - 29 * 86_400_000);
    const days = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000 + 1;
    if (days < 1) throw new InvalidRequestError(`'from' (${from}) is after 'to' (${to}).`, 'from');
    // Each day is one read of the store: a range is answered whole or refused, never cut short.
    if (days > MAX_USAGE_DAYS)
      throw new InvalidRequestError(
        `A usage report covers at most ${MAX_USAGE_DAYS} days; ${from} to ${to} is ${days}.`,
        'from',
      );
    const rows = await registry.usageRows({
      from,
      to,
      teamId: query.team_id,
      keyId: query.key_id,
      model: query.model,
    });
    const data = groupUsage(rows, query.group_by);
    if (query.group_by === 'team') {
      // Per team, what its cache holds now (team-scoped entries) next to its hits and misses.
      const held = new Map(
        (await options.cache.stats({}, options.clock())).map((stats) => [stats.scope, stats]),
      );
      for (const row of data) {
        const stats = held.get(cacheScope('team', String(row.team_id)));
        row.cache_entries = stats?.entries ?? 0;
        row.cache_bytes = stats?.bytes ?? 0;
      }
    }
    return { object: 'list', from, to, group_by: query.group_by, data };
  });
  app.get('/metrics', async (request, reply) => {
    // The counters are this process's own: they are still served when the store cannot answer.
    const [stats, deployments] = await Promise.all([
      options.cache.stats({}, options.clock()).catch((error: Error) => {
        request.log.warn({ error: { message: error.message } }, 'metrics: no cache figures from the store');
        return [];
      }),
      options.deployments.list().catch((error: Error) => {
        request.log.warn({ error: { message: error.message } }, 'metrics: no circuit states from the store');
        return [];
      }),
    ]);
    const text = options.metrics.render(stats, deployments);
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });

  app.get('/deployments', async () => ({ object: 'list', data: await options.deployments.list() }));
  app.post<{ Params: { name: string } }>('/backends/:name/refresh', async (request) =>
    refreshBackendModels(options.backends ?? { all: () => [] }, request.params.name),
  );

  app.get('/cache', async (request) => {
    const scope = cacheScopeOf(parseInput(cacheQuerySchema, request.query));
    const stats = await options.cache.stats({ scope }, options.clock());
    return { object: 'list', data: stats.map(publicCacheStats) };
  });
  app.delete('/cache', async (request) => {
    const query = parseInput(cachePurgeQuerySchema, request.query);
    const scope = cacheScopeOf(query);
    if (scope === undefined && query.all !== 'true')
      throw new InvalidRequestError(
        'Say what to purge: team_id, key_id or scope=global (optionally with model), or all=true.',
        'all',
      );
    const deleted = await options.cache.purge({ scope, model: query.model }, options.clock());
    return { object: 'cache.purge', deleted };
  });

  app.get('/requests', async (request) => {
    const query = parseInput(requestsQuerySchema, request.query);
    const page = await registry.listRequests(query);
    return {
      object: 'list',
      data: page.items.map(publicRequest),
      first_id: page.items[0]?.id ?? null,
      last_id: page.items.at(-1)?.id ?? null,
      has_more: page.hasMore,
    };
  });

  app.get('/audit', async (request) => {
    const query = parseInput(listQuerySchema.omit({ team_id: true }), request.query);
    assertCursor('after', query.after, AUDIT_EVENT_IDS);
    return list(await registry.listAudit(query), publicAuditEvent);
  });
}
