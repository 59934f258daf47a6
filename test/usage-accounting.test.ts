import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { gatewayStores } from './support/gateway-stores.js';

/**
 * ⑦ usage: every keyed request's tokens and cost are recorded after its response, summed per
 * day / team / key / model, and paged in a request log: on the embedded store and on Redis.
 */
const ADMIN = 'test-admin-key-0123456789';
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const run = promisify(execFile);
const USAGE = { prompt_tokens: 1_000, completion_tokens: 100, total_tokens: 1_100 };

async function gateway(redisUrl?: string): Promise<{ gw: TestGateway; upstream: FakeUpstream }> {
  const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
    const body = request.json ?? {};
    const base = { id: 'c', created: 1, model: String(body.model) };
    if (body.stream) {
      return sendSse(res, [
        {
          ...base,
          object: 'chat.completion.chunk',
          choices: [{ index: 0, delta: { content: 'ok' }, logprobs: null, finish_reason: 'stop' }],
        },
        { ...base, object: 'chat.completion.chunk', choices: [], usage: USAGE },
      ]);
    }
    sendJson(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'ok', refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: USAGE,
    });
  });
  const base = await upstream.start();
  const gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    ...(redisUrl ? { redis: { url: redisUrl } } : {}),
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    // gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens; `local` has no price.
    models: { mini: { backend: 'up', model: 'gpt-4o-mini' }, local: { backend: 'up', model: 'my-llama' } },
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

type Row = Record<string, unknown> & { requests: number; total_tokens: number; cost_usd: number };

const stores = gatewayStores();

describe.each(stores)('usage accounting ($name)', (store) => {
  it('records tokens and cost per request, sums them by day, model, key and team, and pages the request log', async (context) => {
    if (!store.available()) return context.skip('no Redis here (see the notice above)');
    const { gw, upstream } = await gateway(store.url());
    try {
      const team = await admin<{ id: string }>(gw, 'POST', '/teams', { name: `usage-${store.name}` });
      const one = await admin<{ id: string; key: string }>(gw, 'POST', '/keys', { team_id: team.id });
      const two = await admin<{ id: string; key: string }>(gw, 'POST', '/keys', { team_id: team.id });
      const a = new OpenAI({ baseURL: gw.baseURL, apiKey: one.key, maxRetries: 0 });
      const b = new OpenAI({ baseURL: gw.baseURL, apiKey: two.key, maxRetries: 0 });
      const ask = { messages: [{ role: 'user' as const, content: 'hi' }] };
      await a.chat.completions.create(
        { model: 'mini', ...ask },
        { headers: { 'x-tollgate-tags': 'search, nightly' } },
      );
      const stream = await a.chat.completions.create({ model: 'mini', stream: true, ...ask });
      for await (const _chunk of stream) {
        // drain
      }
      await b.chat.completions.create({ model: 'local', ...ask });
      expect(upstream.requests).toHaveLength(3);

      // Recording happens after each response, off the client's path: wait for it.
      let byKey: Row[] = [];
      for (let i = 0; i < 750; i++) {
        byKey = (await admin<{ data: Row[] }>(gw, 'GET', `/usage?team_id=${team.id}&group_by=key`)).data;
        if (byKey.reduce((sum, row) => sum + row.requests, 0) === 3) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const miniCost = (1_000 * 0.15 + 100 * 0.6) / 1_000_000;
      expect(byKey.find((row) => row.key_id === one.id)).toMatchObject({
        requests: 2,
        total_tokens: 2_200,
        cost_usd: 2 * miniCost,
      });
      expect(byKey.find((row) => row.key_id === two.id)).toMatchObject({
        requests: 1,
        total_tokens: 1_100,
        cost_usd: 0,
      });
      const byModel = (await admin<{ data: Row[] }>(gw, 'GET', `/usage?team_id=${team.id}&group_by=model`))
        .data;
      expect(byModel.map((row) => [row.model, row.requests])).toEqual([
        ['local', 1],
        ['mini', 2],
      ]);
      const byTeam = (await admin<{ data: Row[] }>(gw, 'GET', `/usage?team_id=${team.id}&group_by=team`))
        .data;
      expect(byTeam).toEqual([
        {
          team_id: team.id,
          requests: 3,
          rejected: 0,
          invalid: 0,
          failed: 0,
          prompt_tokens: 3_000,
          completion_tokens: 300,
          total_tokens: 3_300,
          cost_usd: 2 * miniCost,
          cache_hits: 0,
          cache_misses: 0,
          cache_entries: 0,
          cache_bytes: 0,
        },
      ]);
      const filtered = (await admin<{ data: Row[] }>(gw, 'GET', `/usage?key_id=${two.id}&model=local`)).data;
      expect(filtered.map((row) => row.requests)).toEqual([1]);

      // The log may be shared (REDIS_URL): look at this test's keys only.
      const ours = (
        await admin<{ data: Array<Record<string, unknown>> }>(gw, 'GET', '/requests?limit=100')
      ).data.filter((entry) => entry.key_id === one.id || entry.key_id === two.id);
      expect(ours.map((entry) => [entry.key_id, entry.model, entry.stream])).toEqual([
        [two.id, 'local', false],
        [one.id, 'mini', true],
        [one.id, 'mini', false],
      ]);
      expect(ours[0]).toMatchObject({
        unpriced: true,
        status: 200,
        outcome: 'served',
        estimated: false,
        cost_usd: 0,
      });
      expect(ours[2]).toMatchObject({ tags: ['search', 'nightly'], total_tokens: 1_100, cost_usd: miniCost });
      // The CLI shows the same report (the built CLI, as a user runs it).
      const cli = (...args: string[]) =>
        run(process.execPath, [CLI, '--url', gw.url, ...args], {
          env: { ...process.env, TOLLGATE_ADMIN_KEY: ADMIN },
        });
      const asJson = JSON.parse(
        (await cli('usage', '--team', team.id, '--group-by', 'model', '--json')).stdout,
      ) as {
        data: Row[];
      };
      expect(asJson.data).toEqual(byModel);
      const table = (await cli('usage', '--team', team.id, '--group-by', 'model')).stdout;
      expect(table).toMatch(
        /MODEL\s+SERVED\s+REJECTED\s+INVALID\s+FAILED\s+PROMPT\s+COMPLETION\s+TOTAL\s+COST USD/,
      );
      expect(table).toMatch(/mini\s+2\s+0\s+0\s+0\s+2000\s+200\s+2200\s+0\.000420/);

      const first = await admin<{ data: Array<{ id: string }>; has_more: boolean }>(
        gw,
        'GET',
        '/requests?limit=1',
      );
      expect(first.has_more).toBe(true);
      const next = await admin<{ data: Array<{ id: string }> }>(
        gw,
        'GET',
        `/requests?limit=1&before=${first.data[0]?.id}`,
      );
      expect(next.data).toHaveLength(1);
      expect(next.data[0]?.id).not.toBe(first.data[0]?.id);
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });
});

describe('usage query validation', () => {
  it('rejects a malformed day or group in the envelope', async () => {
    const { gw, upstream } = await gateway();
    try {
      const response = await fetch(`${gw.url}/admin/usage?from=yesterday`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { param: string } }).error.param).toBe('from');
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });
});
