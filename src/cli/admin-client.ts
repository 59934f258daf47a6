import type {
  ApiErrorBody,
  ApiKey,
  ApiKeyWithSecret,
  CachePurge,
  CachePurgeQuery,
  CacheQuery,
  CacheStats,
  CreateKeyRequest,
  CreateTeamRequest,
  DeletedTeam,
  DeploymentList,
  KeyListQuery,
  ListPage,
  ListQuery,
  RotateKeyRequest,
  Team,
  UpdateKeyRequest,
  UpdateTeamRequest,
  UsageQuery,
  UsageReport,
} from './admin-types.js';

/** What the gateway said, parsed, and byte for byte (for `--json`, which must not reshape it). */
export interface AdminResponse<T> {
  status: number;
  data: T;
  raw: string;
}

/** The gateway answered, with an error status. */
export class AdminApiError extends Error {
  readonly status: number;
  readonly code: string | null;
  readonly type: string | null;
  readonly param: string | null;
  constructor(
    status: number,
    message: string,
    details: { code?: string | null; type?: string | null; param?: string | null } = {},
  ) {
    super(message);
    this.name = 'AdminApiError';
    this.status = status;
    this.code = details.code ?? null;
    this.type = details.type ?? null;
    this.param = details.param ?? null;
  }
}

/** No answer at all: refused, unresolvable, reset, or too slow. */
export class GatewayUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayUnreachableError';
  }
}

export interface AdminClientOptions {
  /** The gateway's root (`http://host:8080`, or with a path prefix if it sits behind one). */
  baseUrl: string;
  adminKey?: string | undefined;
  timeoutMs?: number;
  userAgent?: string;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
type Query = Record<string, string | number | boolean | undefined>;

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
};

/** A small typed client for `/admin`; one method per endpoint of docs/admin-api.md. */
export class AdminClient {
  readonly baseUrl: string;
  readonly #adminKey: string | undefined;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(options: AdminClientOptions) {
    // A trailing slash makes relative resolution keep any path prefix in the base.
    this.baseUrl = options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`;
    this.#adminKey = options.adminKey;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#userAgent = options.userAgent ?? 'tollgate-cli';
  }

  createTeam(body: CreateTeamRequest): Promise<AdminResponse<Team>> {
    return this.#request('POST', 'admin/teams', { body });
  }

  listTeams(query: ListQuery = {}): Promise<AdminResponse<ListPage<Team>>> {
    return this.#request('GET', 'admin/teams', { query: { limit: query.limit, after: query.after } });
  }

  getTeam(id: string): Promise<AdminResponse<Team>> {
    return this.#request('GET', `admin/teams/${encodeURIComponent(id)}`);
  }

  updateTeam(id: string, body: UpdateTeamRequest): Promise<AdminResponse<Team>> {
    return this.#request('PATCH', `admin/teams/${encodeURIComponent(id)}`, { body });
  }

  deleteTeam(id: string, options: { force?: boolean } = {}): Promise<AdminResponse<DeletedTeam>> {
    return this.#request('DELETE', `admin/teams/${encodeURIComponent(id)}`, {
      query: { force: options.force ? 'true' : undefined },
    });
  }

  createKey(body: CreateKeyRequest): Promise<AdminResponse<ApiKeyWithSecret>> {
    return this.#request('POST', 'admin/keys', { body });
  }

  listKeys(query: KeyListQuery = {}): Promise<AdminResponse<ListPage<ApiKey>>> {
    return this.#request('GET', 'admin/keys', {
      query: { team_id: query.team_id, limit: query.limit, after: query.after },
    });
  }

  getKey(id: string): Promise<AdminResponse<ApiKey>> {
    return this.#request('GET', `admin/keys/${encodeURIComponent(id)}`);
  }

  updateKey(id: string, body: UpdateKeyRequest): Promise<AdminResponse<ApiKey>> {
    return this.#request('PATCH', `admin/keys/${encodeURIComponent(id)}`, { body });
  }

  rotateKey(id: string, body: RotateKeyRequest = {}): Promise<AdminResponse<ApiKeyWithSecret>> {
    return this.#request('POST', `admin/keys/${encodeURIComponent(id)}/rotate`, { body });
  }

  revokeKey(id: string): Promise<AdminResponse<ApiKey>> {
    return this.#request('DELETE', `admin/keys/${encodeURIComponent(id)}`);
  }

  getUsage(query: UsageQuery = {}): Promise<AdminResponse<UsageReport>> {
    return this.#request('GET', 'admin/usage', { query: { ...query } });
  }

  listDeployments(): Promise<AdminResponse<DeploymentList>> {
    return this.#request('GET', 'admin/deployments');
  }

  getCacheStats(query: CacheQuery = {}): Promise<AdminResponse<CacheStats>> {
    return this.#request('GET', 'admin/cache', {
      query: { team_id: query.team_id, key_id: query.key_id, scope: query.scope },
    });
  }

  purgeCache(query: CachePurgeQuery): Promise<AdminResponse<CachePurge>> {
    return this.#request('DELETE', 'admin/cache', {
      query: {
        team_id: query.team_id,
        key_id: query.key_id,
        scope: query.scope,
        model: query.model,
        all: query.all ? 'true' : undefined,
      },
    });
  }

  async #request<T>(
    method: Method,
    path: string,
    options: { body?: object; query?: Query } = {},
  ): Promise<AdminResponse<T>> {
    const url = new URL(path, this.baseUrl);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent };
    if (this.#adminKey) headers.authorization = `Bearer ${this.#adminKey}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';

    // One deadline for connecting and reading the body: a gateway that accepts the
    // connection and then stalls is as unreachable, for a script, as one that refuses it.
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let statusText: string;
    let raw: string;
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal,
      });
      status = response.status;
      statusText = response.statusText;
      raw = await response.text();
    } catch (error) {
      throw new GatewayUnreachableError(
        `could not reach the gateway at ${url.origin}: ${describeNetworkError(error, this.#timeoutMs)}`,
      );
    }

    let data: unknown;
    try {
      data = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      data = undefined;
    }
    if (status < 200 || status > 299) {
      const envelope = isErrorBody(data) ? data.error : undefined;
      throw new AdminApiError(status, envelope?.message ?? `HTTP ${status} ${statusText}`.trim(), {
        code: envelope?.code ?? null,
        type: envelope?.type ?? null,
        param: envelope?.param ?? null,
      });
    }
    if (data === undefined || typeof data !== 'object' || data === null) {
      throw new AdminApiError(status, `the gateway answered HTTP ${status} without a JSON object`);
    }
    // The gateway is the authority on these shapes; the CLI only displays them.
    return { status, data: data as T, raw };
  }
}

function isErrorBody(value: unknown): value is ApiErrorBody {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false;
  const error = (value as { error: unknown }).error;
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}

function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs / 1000}s`;
  }
  // fetch reports every network failure as "fetch failed" and keeps the reason in `cause`.
  let cause: unknown = error;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code && NETWORK_CODES[code]) return NETWORK_CODES[code];
    if (code) return `${cause.message} (${code})`;
    if (!(cause.cause instanceof Error)) return cause.message;
    cause = cause.cause;
  }
  return String(error);
}
