/** A tiny admin API client for tests: real HTTP, JSON in and out, nothing hidden. */

export const TEST_ADMIN_KEY = 'test-admin-key-0123456789';

export interface AdminResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TeamObject {
  id: string;
  object: 'team';
  name: string;
  models: string[];
  default_key_policy: { models?: string[]; expires_in_seconds?: number } | null;
  metadata: Record<string, unknown>;
  active_keys?: number;
  created_at: number;
  updated_at: number;
}

export interface KeyObject {
  id: string;
  object: 'api_key';
  name: string | null;
  owner: string | null;
  team_id: string;
  models: string[] | null;
  expires_at: number | null;
  disabled: boolean;
  revoked_at: number | null;
  status: 'active' | 'disabled' | 'expired' | 'revoked';
  metadata: Record<string, unknown>;
  created_at: number;
  updated_at: number;
  last_used_at: number | null;
  preview: string;
}

/** A key as create and rotate answer it: with its plaintext, shown only there. */
export interface IssuedKeyObject extends KeyObject {
  key: string;
}

export interface ListObject<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export interface AuditEventObject {
  id: string;
  object: 'audit_event';
  created_at: number;
  actor: string;
  action: string;
  target_type: 'team' | 'api_key';
  target_id: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class AdminHttp {
  constructor(
    /** `http://127.0.0.1:<port>` (no `/admin`). */
    private readonly baseUrl: string,
    /** null: send no admin key at all. */
    private readonly adminKey: string | null = TEST_ADMIN_KEY,
  ) {}

  /** Any request; `headers` replace the admin key's Authorization when they set one. */
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AdminResponse<T>> {
    const response = await fetch(`${this.baseUrl}/admin${path}`, {
      method,
      headers: {
        ...(this.adminKey ? { authorization: `Bearer ${this.adminKey}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as T };
  }

  /** A call that must succeed with `status`; fails the test with the body otherwise. */
  async ok<T>(
    method: string,
    path: string,
    body?: unknown,
    status = method === 'POST' ? 201 : 200,
  ): Promise<T> {
    const response = await this.call<T>(method, path, body);
    if (response.status !== status) {
      throw new Error(
        `${method} /admin${path}: expected ${status}, got ${response.status}: ${JSON.stringify(response.body)}`,
      );
    }
    return response.body;
  }

  createTeam(input: Record<string, unknown>): Promise<TeamObject> {
    return this.ok<TeamObject>('POST', '/teams', input);
  }

  createKey(input: Record<string, unknown>): Promise<IssuedKeyObject> {
    return this.ok<IssuedKeyObject>('POST', '/keys', input);
  }

  /** A new team (a unique name, then `team`'s fields) and a key for it (`key`'s fields): its plaintext. */
  async teamKey(team: Record<string, unknown> = {}, key: Record<string, unknown> = {}): Promise<string> {
    const created = await this.createTeam({ name: `team-${crypto.randomUUID().slice(0, 8)}`, ...team });
    return (await this.createKey({ team_id: created.id, ...key })).key;
  }

  getKey(id: string): Promise<KeyObject> {
    return this.ok<KeyObject>('GET', `/keys/${id}`);
  }

  patchKey(id: string, patch: Record<string, unknown>): Promise<KeyObject> {
    return this.ok<KeyObject>('PATCH', `/keys/${id}`, patch);
  }

  rotateKey(id: string, body: Record<string, unknown> = {}): Promise<IssuedKeyObject> {
    return this.ok<IssuedKeyObject>('POST', `/keys/${id}/rotate`, body, 200);
  }

  revokeKey(id: string): Promise<KeyObject> {
    return this.ok<KeyObject>('DELETE', `/keys/${id}`);
  }
}
