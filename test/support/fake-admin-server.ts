import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiKey, KeyPolicy, ListPage, StoredMetadata, Team } from '../../src/cli/admin-types.js';

/**
 * An in-memory stand-in for the gateway's `/admin` API, written from docs/admin-api.md
 * alone, so the CLI's tests pin the contract rather than one server's quirks. It records
 * every request (and the body it answered) so tests can check what the CLI sent.
 */

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  contentType: string | undefined;
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown;
  status: number;
  /** The response body exactly as sent. */
  response: string;
}

export interface FakeAdminServer {
  url: string;
  adminKey: string;
  requests: RecordedRequest[];
  /** Accept requests and never answer them (for timeouts). */
  hang: boolean;
  /** Unix seconds the server stamps on what it creates or changes. */
  now: number;
  teams: Map<string, Team>;
  keys: Map<string, StoredKey>;
  secrets: Map<string, string>;
  reset(): void;
  close(): Promise<void>;
}

interface StoredKey {
  id: string;
  name: string | null;
  owner: string | null;
  team_id: string;
  models: string[] | null;
  expires_at: number | null;
  disabled: boolean;
  revoked_at: number | null;
  metadata: StoredMetadata;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
}

class HttpError extends Error {
  readonly status: number;
  readonly code: string | null;
  readonly param: string | null;
  constructor(status: number, message: string, code: string | null = null, param: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(param: string, message: string): HttpError {
  return new HttpError(400, message, null, param);
}

function optionalString(body: Json, field: string): string | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '')
    throw invalid(field, `'${field}' must be a non-empty string`);
  return value;
}

function optionalModels(body: Json, field: string): string[] | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((m) => typeof m === 'string' && m !== '')) {
    throw invalid(field, `'${field}' must be a non-empty array of model names`);
  }
  return value as string[];
}

/** The contract leaves values open, so any JSON value is kept (the CLI itself only sends strings). */
function optionalMetadata(body: Json): StoredMetadata | undefined {
  const value = body.metadata;
  if (value === undefined) return undefined;
  if (!isObject(value)) throw invalid('metadata', "'metadata' must be an object");
  return value;
}

function optionalSeconds(body: Json, field: string, nullable: boolean): number | null | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (value === null && nullable) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalid(field, `'${field}' must be a whole number of seconds`);
  }
  return value;
}

function keyPolicy(body: Json): KeyPolicy | null | undefined {
  const value = body.default_key_policy;
  if (value === undefined || value === null) return value;
  if (!isObject(value)) throw invalid('default_key_policy', "'default_key_policy' must be an object or null");
  const policy: KeyPolicy = {};
  const models = optionalModels(value, 'models');
  if (models) policy.models = models;
  const expires = optionalSeconds(value, 'expires_in_seconds', false);
  if (typeof expires === 'number') policy.expires_in_seconds = expires;
  return policy;
}

function only(body: Json, fields: string[]): void {
  for (const field of Object.keys(body)) {
    if (!fields.includes(field)) throw invalid(field, `unknown field '${field}'`);
  }
}

export async function startFakeAdminServer(
  options: { adminKey?: string; now?: number } = {},
): Promise<FakeAdminServer> {
  let counter = 0;
  const nextId = (prefix: string) => `${prefix}_${String(++counter).padStart(4, '0')}`;

  const state: FakeAdminServer = {
    url: '',
    adminKey: options.adminKey ?? 'tg-admin-fake-s3cret-value',
    requests: [],
    hang: false,
    now: options.now ?? 1_750_000_000,
    teams: new Map(),
    keys: new Map(),
    secrets: new Map(),
    reset() {
      counter = 0;
      state.requests.length = 0;
      state.hang = false;
      state.teams.clear();
      state.keys.clear();
      state.secrets.clear();
    },
    close: async () => {},
  };

  const status = (key: StoredKey): ApiKey['status'] => {
    if (key.revoked_at !== null) return 'revoked';
    if (key.disabled) return 'disabled';
    if (key.expires_at !== null && key.expires_at <= state.now) return 'expired';
    return 'active';
  };
  const publicKey = (key: StoredKey): ApiKey => ({
    id: key.id,
    object: 'api_key',
    name: key.name,
    owner: key.owner,
    team_id: key.team_id,
    models: key.models,
    expires_at: key.expires_at,
    disabled: key.disabled,
    revoked_at: key.revoked_at,
    status: status(key),
    metadata: key.metadata,
    created_at: key.created_at,
    updated_at: key.updated_at,
    last_used_at: key.last_used_at,
    preview: `tg-${key.id}-…`,
  });
  const activeKeys = (teamId: string) =>
    [...state.keys.values()].filter((key) => key.team_id === teamId && status(key) === 'active').length;
  const publicTeam = (team: Team): Team => ({ ...team, active_keys: activeKeys(team.id) });
  const team = (id: string): Team => {
    const found = state.teams.get(id);
    if (!found) throw new HttpError(404, `No team '${id}'.`, 'team_not_found', 'id');
    return found;
  };
  const key = (id: string): StoredKey => {
    const found = state.keys.get(id);
    if (!found) throw new HttpError(404, `No key '${id}'.`, 'key_not_found', 'id');
    return found;
  };
  const checkModels = (models: string[] | null | undefined, teamModels: string[]) => {
    if (!models || teamModels.includes('*')) return;
    const outside = models.filter((m) => !teamModels.includes(m));
    if (outside.length > 0) {
      throw new HttpError(
        400,
        `Models not allowed for this team: ${outside.join(', ')}.`,
        'model_not_allowed',
        'models',
      );
    }
  };
  const issueSecret = (id: string): string => {
    const secret = `tg-${id}-${randomBytes(12).toString('hex')}`;
    state.secrets.set(id, secret);
    return secret;
  };
  const list = <T extends { id: string }>(items: T[], query: Record<string, string>): ListPage<T> => {
    const limit = query.limit === undefined ? 20 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('limit', 'limit must be 1..100');
    let start = 0;
    if (query.after !== undefined) {
      start = items.findIndex((item) => item.id === query.after) + 1;
      if (start === 0) throw invalid('after', `unknown cursor '${query.after}'`);
    }
    const data = items.slice(start, start + limit);
    return {
      object: 'list',
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < items.length,
    };
  };

  const route = (
    method: string,
    path: string,
    query: Record<string, string>,
    body: Json,
  ): [number, unknown] => {
    const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (segments[0] !== 'admin') throw new HttpError(404, `Unknown route ${method} ${path}.`);
    const [, collection, id, action] = segments;

    if (collection === 'teams' && id === undefined) {
      // As documented: list pages carry no active_keys (only the answers about one team do).
      if (method === 'GET')
        return [
          200,
          list(
            [...state.teams.values()].map(({ active_keys: _count, ...listed }) => listed),
            query,
          ),
        ];
      if (method === 'POST') {
        only(body, ['name', 'models', 'default_key_policy', 'metadata']);
        const name = optionalString(body, 'name');
        if (!name) throw invalid('name', "'name' is required");
        const created: Team = {
          id: nextId('team'),
          object: 'team',
          name,
          models: optionalModels(body, 'models') ?? ['*'],
          default_key_policy: keyPolicy(body) ?? null,
          metadata: optionalMetadata(body) ?? {},
          active_keys: 0,
          created_at: state.now,
          updated_at: state.now,
        };
        state.teams.set(created.id, created);
        return [201, publicTeam(created)];
      }
    }
    if (collection === 'teams' && id !== undefined && action === undefined) {
      const found = team(id);
      if (method === 'GET') return [200, publicTeam(found)];
      if (method === 'PATCH') {
        only(body, ['name', 'models', 'default_key_policy', 'metadata']);
        const name = optionalString(body, 'name');
        const models = optionalModels(body, 'models');
        const policy = keyPolicy(body);
        const metadata = optionalMetadata(body);
        if (name !== undefined) found.name = name;
        if (models !== undefined) found.models = models;
        if (policy !== undefined) found.default_key_policy = policy;
        if (metadata !== undefined) found.metadata = metadata;
        found.updated_at = state.now;
        return [200, publicTeam(found)];
      }
      if (method === 'DELETE') {
        if (activeKeys(id) > 0 && query.force !== 'true') {
          throw new HttpError(
            409,
            `Team '${id}' has ${activeKeys(id)} active key(s); revoke them or delete with force=true.`,
            'team_has_active_keys',
          );
        }
        for (const stored of state.keys.values()) {
          if (stored.team_id === id && stored.revoked_at === null) stored.revoked_at = state.now;
        }
        state.teams.delete(id);
        return [200, { id, object: 'team', deleted: true }];
      }
    }
    if (collection === 'keys' && id === undefined) {
      if (method === 'GET') {
        const all = [...state.keys.values()].filter(
          (stored) => query.team_id === undefined || stored.team_id === query.team_id,
        );
        return [200, list(all.map(publicKey), query)];
      }
      if (method === 'POST') {
        only(body, ['team_id', 'name', 'owner', 'models', 'expires_at', 'metadata']);
        const teamId = optionalString(body, 'team_id');
        if (!teamId) throw invalid('team_id', "'team_id' is required");
        const owner = team(teamId);
        const models = optionalModels(body, 'models') ?? owner.default_key_policy?.models ?? null;
        checkModels(models, owner.models);
        const expiresIn = owner.default_key_policy?.expires_in_seconds;
        const stored: StoredKey = {
          id: nextId('key'),
          name: optionalString(body, 'name') ?? null,
          owner: optionalString(body, 'owner') ?? null,
          team_id: teamId,
          models,
          expires_at:
            optionalSeconds(body, 'expires_at', false) ??
            (expiresIn === undefined ? null : state.now + expiresIn),
          disabled: false,
          revoked_at: null,
          metadata: optionalMetadata(body) ?? {},
          created_at: state.now,
          updated_at: state.now,
          last_used_at: null,
        };
        state.keys.set(stored.id, stored);
        return [201, { ...publicKey(stored), key: issueSecret(stored.id) }];
      }
    }
    if (collection === 'keys' && id !== undefined && action === undefined) {
      const found = key(id);
      if (method === 'GET') return [200, publicKey(found)];
      if (method === 'PATCH') {
        only(body, ['name', 'owner', 'models', 'expires_at', 'disabled', 'metadata']);
        const name = optionalString(body, 'name');
        const owner = optionalString(body, 'owner');
        const models = optionalModels(body, 'models');
        checkModels(models, team(found.team_id).models);
        const expiresAt = optionalSeconds(body, 'expires_at', true);
        if (body.disabled !== undefined && typeof body.disabled !== 'boolean') {
          throw invalid('disabled', "'disabled' must be a boolean");
        }
        const metadata = optionalMetadata(body);
        if (name !== undefined) found.name = name;
        if (owner !== undefined) found.owner = owner;
        if (models !== undefined) found.models = models;
        if (expiresAt !== undefined) found.expires_at = expiresAt;
        if (typeof body.disabled === 'boolean') found.disabled = body.disabled;
        if (metadata !== undefined) found.metadata = metadata;
        found.updated_at = state.now;
        return [200, publicKey(found)];
      }
      if (method === 'DELETE') {
        if (found.revoked_at === null) found.revoked_at = state.now;
        found.updated_at = state.now;
        return [200, publicKey(found)];
      }
    }
    if (collection === 'keys' && id !== undefined && action === 'rotate' && method === 'POST') {
      const found = key(id);
      only(body, ['grace_seconds']);
      optionalSeconds(body, 'grace_seconds', false);
      found.updated_at = state.now;
      return [200, { ...publicKey(found), key: issueSecret(found.id) }];
    }
    throw new HttpError(404, `Unknown route ${method} ${path}.`);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(request.url ?? '/', 'http://fake');
    const record: RecordedRequest = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: request.headers.authorization,
      contentType: request.headers['content-type'],
      body: undefined,
      status: 0,
      response: '',
    };
    state.requests.push(record);
    if (state.hang) return;

    let statusCode: number;
    let payload: unknown;
    try {
      if (request.headers.authorization !== `Bearer ${state.adminKey}`) {
        throw new HttpError(401, 'Invalid or missing admin key.', 'invalid_admin_key');
      }
      if (text !== '') {
        try {
          record.body = JSON.parse(text);
        } catch {
          throw invalid('body', 'body is not valid JSON');
        }
      }
      if (record.body !== undefined && !isObject(record.body))
        throw invalid('body', 'body must be an object');
      [statusCode, payload] = route(record.method, record.path, record.query, (record.body as Json) ?? {});
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      statusCode = error.status;
      payload = {
        error: {
          message: error.message,
          type: error.status === 401 ? 'authentication_error' : 'invalid_request_error',
          param: error.param,
          code: error.code,
        },
      };
    }
    record.status = statusCode;
    record.response = JSON.stringify(payload);
    response.writeHead(statusCode, { 'content-type': 'application/json' });
    response.end(record.response);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: Error) => {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ error: { message: error.message, type: 'server_error', param: null, code: null } }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
