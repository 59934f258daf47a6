import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import type { TestGateway } from './support/gateway.js';

/**
 * A number too large for a double (`1e400`, which JSON parsers read as Infinity) is a number out
 * of range, and the 400 says so with the field's own bound, in OpenAI's words for an integer out
 * of range, never "expected a number, but got a decimal number". And an `expires_at` just past
 * the latest second is told it is too late, not that it looks like milliseconds.
 */

let gw: TestGateway;
let admin: AdminHttp;
let key: string;
let teamId: string;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway());
  const team = await admin.createTeam({ name: 'numbers' });
  teamId = team.id;
  key = (await admin.createKey({ team_id: team.id })).key;
});
afterAll(() => gw.close());

/** `body` as written, so it can hold numbers JSON.stringify cannot write (1e400). */
async function send(
  method: string,
  path: string,
  body: string | undefined,
  headers: Record<string, string>,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${gw.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body }),
  });
  return { status: response.status, body: await response.json() };
}

const asAdmin = { authorization: 'Bearer test-admin-key-0123456789' };

function expectInvalid(response: { status: number; body: unknown }, param: string): string {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  return expectEnvelope(response.body, { type: 'invalid_request_error', code: null, param }).message;
}

describe('a number past what a double holds', () => {
  it('as max_tokens on chat completions: above the field maximum', async () => {
    const message = expectInvalid(
      await send(
        'POST',
        '/v1/chat/completions',
        '{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}',
        { authorization: `Bearer ${key}` },
      ),
      'max_tokens',
    );
    expect(message).toBe(
      "Invalid 'max_tokens': number above maximum value. Expected a value <= 2147483647, but got a number too large to represent instead.",
    );
  });

  it('negative, as max_tokens: below the field minimum', async () => {
    const message = expectInvalid(
      await send(
        'POST',
        '/v1/chat/completions',
        '{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":-1e400}',
        { authorization: `Bearer ${key}` },
      ),
      'max_tokens',
    );
    expect(message).toBe(
      "Invalid 'max_tokens': number below minimum value. Expected a value >= 1, but got a negative number too large to represent instead.",
    );
  });

  it("as max_tokens on Anthropic's messages: the same words in Anthropic's envelope", async () => {
    const response = await send(
      'POST',
      '/v1/messages',
      '{"model":"mock","max_tokens":1e400,"messages":[{"role":"user","content":"hi"}]}',
      { 'x-api-key': key, 'anthropic-version': '2023-06-01' },
    );
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        message: expect.stringContaining('number above maximum value. Expected a value <= 2147483647'),
      },
    });
  });

  it('in an admin limit and a budget: above their maximum', async () => {
    const limit = expectInvalid(
      await send('POST', '/admin/teams', '{"name":"big","limits":{"requests_per_minute":1e400}}', asAdmin),
      'limits.requests_per_minute',
    );
    expect(limit).toBe(
      `Invalid 'limits.requests_per_minute': number above maximum value. Expected a value <= ${Number.MAX_SAFE_INTEGER}, but got a number too large to represent instead.`,
    );
    const budget = expectInvalid(
      await send(
        'PATCH',
        `/admin/teams/${teamId}`,
        '{"budgets":[{"period":"day","max_usd":1e400}]}',
        asAdmin,
      ),
      'budgets[0].max_usd',
    );
    expect(budget).toContain(
      'Expected a value <= 1000000000, but got a number too large to represent instead.',
    );
  });

  it('as a query string number: above its maximum', async () => {
    const message = expectInvalid(await send('GET', '/admin/teams?limit=1e400', undefined, asAdmin), 'limit');
    expect(message).toBe(
      "Invalid 'limit': number above maximum value. Expected a value <= 100, but got a number too large to represent instead.",
    );
  });

  it('written as text where a number belongs is still the wrong type', async () => {
    const message = expectInvalid(
      await send(
        'POST',
        '/v1/chat/completions',
        '{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":"1e400"}',
        { authorization: `Bearer ${key}` },
      ),
      'max_tokens',
    );
    expect(message).toBe("Invalid type for 'max_tokens': expected a number, but got a string instead.");
  });
});

describe('expires_at past the latest second', () => {
  it('one second past it, in seconds: too late, with no word of milliseconds', async () => {
    const message = expectInvalid(
      await send(
        'POST',
        '/admin/keys',
        JSON.stringify({ team_id: teamId, expires_at: 253_402_300_800 }),
        asAdmin,
      ),
      'expires_at',
    );
    expect(message).toBe(
      "Invalid value for 'expires_at': expected Unix seconds no later than 253402300799 (9999-12-31T23:59:59Z).",
    );
  });

  it('a timestamp in milliseconds is still told it looks like one', async () => {
    const message = expectInvalid(
      await send(
        'POST',
        '/admin/keys',
        JSON.stringify({ team_id: teamId, expires_at: 1_893_456_000_000 }),
        asAdmin,
      ),
      'expires_at',
    );
    expect(message).toBe(
      "Invalid value for 'expires_at': expected Unix seconds no later than 253402300799 (9999-12-31T23:59:59Z); this looks like a timestamp in milliseconds, 1000 times too large.",
    );
  });
});
