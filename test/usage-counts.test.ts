import { describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { gatewayStores } from './support/gateway-stores.js';

/**
 * ⑦ usage counts say what happened: `requests` the served ones, `rejected` the gateway's own
 * limit and budget refusals, `invalid` its refusals of the request itself, `failed` the rest;
 * together exactly every keyed request recorded, on the embedded store and on Redis.
 */
const ADMIN = 'test-admin-key-0123456789';
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };

interface Counts {
  requests: number;
  rejected: number;
  invalid: number;
  failed: number;
  total_tokens: number;
  cost_usd: number;
}

/** Holds the `held` model's answers until released, then fails them (a refund). */
class Gate {
  arrived: () => void = () => {};
  release: () => void = () => {};
  readonly reached = new Promise<void>((resolve) => {
    this.arrived = resolve;
  });
  readonly opened = new Promise<void>((resolve) => {
    this.release = resolve;
  });
}

async function setup(redisUrl: string | undefined, gate = new Gate()) {
  const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
    const model = String(request.json?.model);
    if (model === 'held-upstream') {
      gate.arrived();
      await gate.opened;
      return sendJson(res, 500, {
        error: { message: 'boom', type: 'server_error', param: null, code: null },
      });
    }
    // The upstream's own errors: its 429 is a failure to serve, not a gateway refusal.
    if (model === 'busy-upstream')
      return sendJson(res, 429, {
        error: { message: 'upstream busy', type: 'requests', param: null, code: 'rate_limit_exceeded' },
      });
    if (model === 'broken-upstream')
      return sendJson(res, 500, {
        error: { message: 'boom', type: 'server_error', param: null, code: null },
      });
    sendJson(res, 200, {
      id: 'c',
      object: 'chat.completion',
      created: 1,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      usage: USAGE,
    });
  });
  const base = await upstream.start();
  const gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    ...(redisUrl ? { redis: { url: redisUrl } } : {}),
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' }, mock: { type: 'mock' } },
    quota: { prices: { 'held-upstream': { input: 0.15, output: 0.6 } } },
    models: {
      mini: { backend: 'up', model: 'gpt-4o-mini' },
      busy: { backend: 'up', model: 'busy-upstream' },
      broken: { backend: 'up', model: 'broken-upstream' },
      // Priced like gpt-4o-mini, so a reservation holds dollars.
      held: { backend: 'up', model: 'held-upstream' },
      mock: { backend: 'mock' },
    },
  });
  return { gw, upstream };
}

async function admin<T>(gw: TestGateway, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return (await response.json()) as T;
}

function chat(gw: TestGateway, key: string, model: string): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }),
  });
}

/** The key's row once `count` of its requests are recorded (records are written after the answers). */
async function countsOnceRecorded(gw: TestGateway, keyId: string, count: number): Promise<Counts> {
  for (;;) {
    const rows = (await admin<{ data: Counts[] }>(gw, 'GET', `/usage?key_id=${keyId}&group_by=key`)).data;
    const row = rows[0];
    if (row)
      for (const count of ['requests', 'rejected', 'invalid', 'failed']) expect(row).toHaveProperty(count);
    if (row && row.requests + row.rejected + row.invalid + row.failed >= count) return row;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const stores = gatewayStores();

describe.each(stores)('usage counts ($name)', (store) => {
  it('a budget that runs out: served + rejected = sent, exactly, and only the served spend', async (context) => {
    if (!store.available()) return context.skip('no Redis here (see the notice above)');
    const { gw, upstream } = await setup(store.url());
    try {
      const team = await admin<{ id: string }>(gw, 'POST', '/teams', { name: `counts-${store.name}` });
      // 40 tokens used per request: room for a handful of the 60 sent at once.
      const key = await admin<{ id: string; key: string }>(gw, 'POST', '/keys', {
        team_id: team.id,
        budgets: [{ period: 'day', max_tokens: 400 }],
      });
      const SENT = 60;
      const statuses = await Promise.all(
        Array.from({ length: SENT }, async () => (await chat(gw, key.key, 'mini')).status),
      );
      const served = statuses.filter((status) => status === 200).length;
      const refused = statuses.filter((status) => status === 429).length;
      expect(served + refused).toBe(SENT);
      expect(served).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
      expect(upstream.requests).toHaveLength(served);

      const row = await countsOnceRecorded(gw, key.id, SENT);
      expect(row).toMatchObject({
        requests: served,
        rejected: refused,
        invalid: 0,
        failed: 0,
        total_tokens: served * USAGE.total_tokens,
      });
      expect(row.requests + row.rejected).toBe(SENT);

      // Each log entry says which count it is in.
      const log = (
        await admin<{ data: Array<{ key_id: string; status: number; outcome: string }> }>(
          gw,
          'GET',
          '/requests?limit=100',
        )
      ).data.filter((entry) => entry.key_id === key.id);
      expect(log).toHaveLength(SENT);
      for (const entry of log) expect(entry.outcome).toBe(entry.status === 200 ? 'served' : 'rejected');
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });

  it("upstream errors (its 429 too) are failed, the gateway's refusals of the request are invalid", async (context) => {
    if (!store.available()) return context.skip('no Redis here (see the notice above)');
    const { gw, upstream } = await setup(store.url());
    try {
      const team = await admin<{ id: string }>(gw, 'POST', '/teams', { name: `failures-${store.name}` });
      const key = await admin<{ id: string; key: string }>(gw, 'POST', '/keys', { team_id: team.id });
      expect((await chat(gw, key.key, 'mini')).status).toBe(200);
      expect((await chat(gw, key.key, 'busy')).status).toBe(429);
      expect((await chat(gw, key.key, 'broken')).status).toBe(502);
      // The mock backend has no audio endpoint: the gateway refuses the upload itself.
      const form = new FormData();
      form.append('model', 'mock');
      form.append('file', new Blob([Buffer.alloc(64)]), 'a.wav');
      const upload = await fetch(`${gw.baseURL}/audio/transcriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}` },
        body: form,
      });
      expect(upload.status).toBe(400);

      const row = await countsOnceRecorded(gw, key.id, 4);
      expect(row).toMatchObject({ requests: 1, rejected: 0, invalid: 1, failed: 2 });
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });

  it('spend shows only once it is final: a reservation is reserved, a refund leaves spent at 0, and spent equals the usage cost', async (context) => {
    if (!store.available()) return context.skip('no Redis here (see the notice above)');
    const gate = new Gate();
    const { gw, upstream } = await setup(store.url(), gate);
    try {
      const team = await admin<{ id: string }>(gw, 'POST', '/teams', { name: `spend-${store.name}` });
      const key = await admin<{ id: string; key: string }>(gw, 'POST', '/keys', {
        team_id: team.id,
        budgets: [{ period: 'day', max_usd: 1 }],
      });
      interface Standing {
        max_usd: number;
        spent_usd: number;
        reserved_usd: number;
        remaining_usd: number;
      }
      const standing = async (): Promise<Standing> => {
        const own = await fetch(`${gw.baseURL}/tollgate/key`, {
          headers: { authorization: `Bearer ${key.key}` },
        });
        const body = (await own.json()) as { standing: { budgets: Standing[] } };
        const budget = body.standing.budgets[0];
        if (!budget) throw new Error('no budget in the standing');
        return budget;
      };
      const adds = (b: Standing) =>
        expect(b.spent_usd + b.reserved_usd + b.remaining_usd).toBeCloseTo(b.max_usd, 9);

      // In flight: held, not spent.
      const pending = chat(gw, key.key, 'held');
      await gate.reached;
      const during = await standing();
      expect(during.spent_usd).toBe(0);
      expect(during.reserved_usd).toBeGreaterThan(0);
      adds(during);
      // The upstream fails: refunded, and nothing was ever shown as spent.
      gate.release();
      expect((await pending).status).toBe(502);
      const failedRow = await countsOnceRecorded(gw, key.id, 1);
      expect(failedRow).toMatchObject({ requests: 0, failed: 1, total_tokens: 0, cost_usd: 0 });
      let after = await standing();
      while (after.reserved_usd > 0) after = await standing();
      expect(after).toMatchObject({ spent_usd: 0, reserved_usd: 0, remaining_usd: 1 });

      // Served: the budget's spent and the usage report's cost are the same figure.
      expect((await chat(gw, key.key, 'mini')).status).toBe(200);
      const servedRow = await countsOnceRecorded(gw, key.id, 2);
      expect(servedRow).toMatchObject({ requests: 1, failed: 1, total_tokens: USAGE.total_tokens });
      expect(servedRow.cost_usd).toBeGreaterThan(0);
      let settled = await standing();
      while (settled.reserved_usd > 0) settled = await standing();
      expect(settled.spent_usd).toBeCloseTo(servedRow.cost_usd, 9);
      adds(settled);
    } finally {
      gate.release();
      await gw.close();
      await upstream.stop();
    }
  });
});

describe('usage report ranges', () => {
  it('an impossible day, from after to, or more than 400 days is a 400 naming the parameter, never a 500', async () => {
    const { gw, upstream } = await setup(undefined);
    try {
      const refused = async (query: string, param: string) => {
        const response = await fetch(`${gw.url}/admin/usage?${query}`, {
          headers: { authorization: `Bearer ${ADMIN}` },
        });
        expect(response.status, query).toBe(400);
        const body = (await response.json()) as { error: { param: string; message: string } };
        expect(body.error.param, query).toBe(param);
        return body.error.message;
      };
      expect(await refused('from=0000-00-00', 'from')).toContain('calendar day');
      expect(await refused('to=2026-02-30', 'to')).toContain('calendar day');
      expect(await refused('from=2026-03-02&to=2026-03-01', 'from')).toContain('after');
      expect(await refused('from=2020-01-01&to=2026-01-01', 'from')).toContain('at most 400 days');
      const year = await fetch(`${gw.url}/admin/usage?from=2025-01-01&to=2025-12-31`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(year.status).toBe(200);
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });
});
