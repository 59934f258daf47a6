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

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * The admin key cannot be sent: an HTTP header carries Latin-1 only, and no line breaks. Raised
 * before any request, so it is never mistaken for an unreachable gateway.
 */
export class UnsendableAdminKeyError extends Error {
  constructor() {
    super('the admin key holds a character an HTTP header cannot carry');
    this.name = 'UnsendableAdminKeyError';
  }
}

/**
 * The server at the base URL answered 404 for an admin path with no "no such team or key" code:
 * the URL leads somewhere (often the `/v1` base URL API clients use), not to the admin API.
 */
export class NotAdminApiError extends Error {
  readonly status: number;
  readonly code: string | null;
  /** What to change, in one line. */
  readonly hint: string;
  constructor(baseUrl: string, method: Method, url: URL, error: AdminApiError) {
    super(`${baseUrl} is not the gateway's admin API: ${method} ${url.pathname} is not a route there`);
    this.name = 'NotAdminApiError';
    this.status = error.status;
    this.code = error.code;
    const base = new URL(baseUrl);
    const root = base.pathname.replace(/\/v1\/?$/, '/');
    this.hint =
      root === base.pathname
        ? "give the gateway's root URL (the one /v1 and /admin are under, e.g. http://127.0.0.1:8080), and check the gateway is as new as this CLI"
        : `drop the trailing /v1: the CLI wants the gateway's root, ${new URL(root, base).href} (--url or TOLLGATE_URL)`;
  }
}

/** 404 codes that mean "no such thing" (docs/admin-api.md: team_not_found, key_not_found). */
const MISSING_THING = /_not_found$/;

function sendableHeader(value: string): boolean {
  try {
    new Headers({ authorization: value });
    return true;
  } catch {
    return false;
  }
}

export interface AdminClientOptions {
  /** The gateway's root (`http://host:8080`, or with a path prefix if it sits behind one). */
  baseUrl: string;
  adminKey?: string | undefined;
  timeoutMs?: number;
  userAgent?: string;
}

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
    if (options.adminKey && !sendableHeader(`Bearer ${options.adminKey}`))
      throw new UnsendableAdminKeyError();
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
      const error = new AdminApiError(status, envelope?.message ?? `HTTP ${status} ${statusText}`.trim(), {
        code: envelope?.code ?? null,
        type: envelope?.type ?? null,
        param: envelope?.param ?? null,
      });
      // Every path the CLI asks for exists on its gateway: a 404 that is not about a team or key
      // says the URL is wrong, and must not read as "already gone" (exit 3) to a script.
      if (status === 404 && !MISSING_THING.test(error.code ?? '')) {
        throw new NotAdminApiError(this.baseUrl, method, url, error);
      }
      throw error;
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
