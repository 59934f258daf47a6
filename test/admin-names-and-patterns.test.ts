import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import type { TestGateway } from './support/gateway.js';

/**
 * What the admin API stores is shown again (lists, logs, the CLI's tables) and read as patterns:
 * a name with a line break, or a model list entry that looks like a pattern but is not one, is
 * refused when it is set, naming the field.
 */
let gw: TestGateway;
let admin: AdminHttp;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway({ mock: { backend: 'mock' }, 'local/tiny': { backend: 'mock' } }));
});
afterAll(() => gw.close());

function expectInvalid(response: { status: number; body: unknown }, param: string, message: RegExp): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  const error = expectEnvelope(response.body, { type: 'invalid_request_error', code: null, param });
  expect(error.message).toMatch(message);
}

describe('names shown in lists and tables', () => {
  it('refuses line breaks and other control characters in team and key names and owners', async () => {
    for (const name of ['two\nlines', 'nul\u0000byte', 'bell\u0007', 'del\u007f']) {
      expectInvalid(await admin.call('POST', '/teams', { name }), 'name', /control characters/);
    }
    const team = await admin.createTeam({ name: 'plain team' });
    expectInvalid(await admin.call('POST', '/keys', { team_id: team.id, name: 'a\rb' }), 'name', /control/);
    expectInvalid(await admin.call('POST', '/keys', { team_id: team.id, owner: 'x\ty' }), 'owner', /control/);
    expectInvalid(await admin.call('PATCH', `/teams/${team.id}`, { name: 'a\nb' }), 'name', /control/);
    // Any other character is a name: accents, emoji, quotes.
    expect((await admin.call('POST', '/teams', { name: 'Équipe "🚀" <b>' })).status).toBe(201);
  });
});

describe('model lists', () => {
  it("refuses a '*' anywhere but alone or after a prefix's slash", async () => {
    for (const pattern of ['gpt-*-mini', 'gpt-4*', '*/mini', 'local/*/x', 'a/**']) {
      expectInvalid(
        await admin.call('POST', '/teams', { name: 't', models: [pattern] }),
        'models[0]',
        /'prefix\/\*'/,
      );
    }
    const team = await admin.createTeam({ name: 'patterns', models: ['*'] });
    expectInvalid(
      await admin.call('POST', '/keys', { team_id: team.id, models: ['mock', 'gpt-*'] }),
      'models[1]',
      /'\*' works only there/,
    );
  });

  it("takes exact names, '*' and 'prefix/*', and serves what they allow", async () => {
    const team = await admin.createTeam({ name: 'allowed', models: ['*'] });
    const key = await admin.createKey({ team_id: team.id, models: ['mock', 'local/*'] });
    const ask = async (model: string) => {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    expect([await ask('mock'), await ask('local/tiny')]).toEqual([200, 200]);
  });
});

describe('metadata', () => {
  it('takes up to 16 KB of JSON on a team or key, and refuses more, naming it', async () => {
    const fits = { notes: 'x'.repeat(16 * 1024 - 20) };
    const team = await admin.ok<{ id: string }>('POST', '/teams', { name: 'with notes', metadata: fits });
    const tooMuch = { notes: 'x'.repeat(16 * 1024) };
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'big', metadata: tooMuch }),
      'metadata',
      /16 KB/,
    );
    expectInvalid(await admin.call('PATCH', `/teams/${team.id}`, { metadata: tooMuch }), 'metadata', /16 KB/);
    expectInvalid(
      await admin.call('POST', '/keys', { team_id: team.id, metadata: tooMuch }),
      'metadata',
      /16 KB/,
    );
  });
});
