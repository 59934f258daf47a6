import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import type { DeploymentView, ModelReadiness } from '../src/routing/deployment-report.js';
import { runCli } from './support/cli-process.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests } from './support/redis.js';

/*
 * Deployment state made visible: GET /admin/deployments, the per-model report in /readyz, the
 * `tollgate deployments` CLI command and the circuit gauge in /admin/metrics. Circuits are
 * opened by a real upstream answering 500; the cool-down passes on an injected clock.
 */

const ADMIN = 'test-admin-key-0123456789';
const CHAT = '/v1/chat/completions';
const COOLDOWN_MS = 60_000;
const CIRCUIT = { failures: 2, cooldownMs: COOLDOWN_MS };
const ONE_TRY = { attempts: 1, backoffMs: 1, maxBackoffMs: 5, maxRetryAfterMs: 200, deadlineMs: 30_000 };
const TWO_TRIES = { ...ONE_TRY, attempts: 2 };

let servers: FakeUpstream[] = [];
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
  gw = undefined;
});

function completion() {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [
      { index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop', logprobs: null },
    ],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  };
}

/** `broken` answers 500 to every chat request, `healthy` answers; a clock the test moves. */
async function setup(
  models: ConfigInput['models'],
  beforeAnswer?: () => Promise<void>,
  extra: Partial<ConfigInput> = {},
) {
  const broken = new FakeUpstream().on('POST', CHAT, (_req, res) =>
    sendJson(res, 500, openaiError('boom', 'server_error')),
  );
  const healthy = new FakeUpstream().on('POST', CHAT, async (_req, res) => {
    await beforeAnswer?.();
    sendJson(res, 200, completion());
  });
  servers.push(broken, healthy);
  const [brokenUrl, healthyUrl] = await Promise.all([broken.start(), healthy.start()]);
  const clock = { now: Date.parse('2026-12-04T12:00:00Z') };
  gw = await startGateway(
    {
      admin: { key: ADMIN },
      // Every /readyz call checks afresh, so each one sees the circuits as they are.
      readiness: { cacheMs: 0 },
      ...extra,
      backends: {
        broken: { type: 'openai', baseUrl: `${brokenUrl}/v1`, apiKey: 'kb' },
        healthy: { type: 'openai', baseUrl: `${healthyUrl}/v1`, apiKey: 'kh' },
      },
      models,
    },
    {},
    { clock: () => clock.now },
  );
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
  const ask = (model: string) =>
    client.chat.completions
      .create({ model, messages: [{ role: 'user', content: 'hi' }] })
      .then(() => 200)
      .catch((error: { status?: number }) => error.status ?? 0);
  return { gw, clock, ask, broken, healthy, brokenUrl, healthyUrl };
}

async function admin(path: string): Promise<Response> {
  if (!gw) throw new Error('no gateway');
  return fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
}

async function deployments(): Promise<DeploymentView[]> {
  const response = await admin('/admin/deployments');
  expect(response.status).toBe(200);
  const body = (await response.json()) as { object: string; data: DeploymentView[] };
  expect(body.object).toBe('list');
  return body.data;
}

async function readyz(): Promise<{ status: number; models: ModelReadiness[] }> {
  if (!gw) throw new Error('no gateway');
  const response = await fetch(`${gw.url}/readyz`);
  const body = (await response.json()) as { models: ModelReadiness[] };
  return { status: response.status, models: body.models };
}

const byId = (list: DeploymentView[], id: string) => {
  const found = list.find((deployment) => deployment.id === id);
  if (!found) throw new Error(`no deployment ${id} in ${JSON.stringify(list.map((d) => d.id))}`);
  return found;
};

const SOLO_MODELS: ConfigInput['models'] = {
  solo: {
    deployments: [{ backend: 'broken', model: 'up-solo', weight: 3, limits: { requestsPerMinute: 100 } }],
    retry: ONE_TRY,
    circuit: CIRCUIT,
  },
  other: { backend: 'healthy' },
};

describe('GET /admin/deployments', () => {
  it('needs the admin key', async () => {
    await setup(SOLO_MODELS);
    const response = await fetch(`${gw?.url}/admin/deployments`);
    expect(response.status).toBe(401);
  });

  it('lists every deployment of every model, closed before any failure', async () => {
    await setup(SOLO_MODELS);
    const list = await deployments();
    expect(list.map((deployment) => deployment.id)).toEqual(['solo/broken', 'other/healthy']);
    expect(byId(list, 'solo/broken')).toEqual({
      object: 'deployment',
      id: 'solo/broken',
      model: 'solo',
      name: 'broken',
      backend: 'broken',
      upstream_model: 'up-solo',
      weight: 3,
      priority: 0,
      circuit: {
        enabled: true,
        state: 'closed',
        consecutive_failures: 0,
        window_requests: 0,
        window_failures: 0,
        retry_after_ms: null,
        probing: false,
      },
      in_flight: 0,
      latency_ms: null,
      limits: { requests_per_minute: 100, tokens_per_minute: null, max_concurrent: null },
    });
    // The one-line form keeps its old behaviour: no circuit breaker.
    expect(byId(list, 'other/healthy').circuit).toMatchObject({ enabled: false, state: 'closed' });
    expect(byId(list, 'other/healthy').upstream_model).toBe('other');
  });

  it('shows a circuit opened by upstream failures with the cool-down left, then half-open after it', async () => {
    const { clock, ask } = await setup(SOLO_MODELS);
    // The upstream's 500 reaches the client as a 502 (one attempt, nothing else to try).
    expect(await ask('solo')).toBe(502);
    expect(byId(await deployments(), 'solo/broken').circuit).toMatchObject({
      state: 'closed',
      consecutive_failures: 1,
      window_requests: 1,
      window_failures: 1,
    });
    expect(await ask('solo')).toBe(502);

    // The failure counts belong to the closed circuit: they start again when it opens.
    const open = byId(await deployments(), 'solo/broken');
    expect(open.circuit).toMatchObject({
      state: 'open',
      consecutive_failures: 0,
      retry_after_ms: COOLDOWN_MS,
    });
    // Latency is measured on answers only: failures leave it unmeasured.
    expect(open.latency_ms).toBeNull();

    clock.now += 20_000;
    expect(byId(await deployments(), 'solo/broken').circuit.retry_after_ms).toBe(COOLDOWN_MS - 20_000);

    clock.now += COOLDOWN_MS;
    expect(byId(await deployments(), 'solo/broken').circuit).toMatchObject({
      state: 'half-open',
      retry_after_ms: null,
      probing: false,
    });
  });

  it('counts a request in flight while its upstream has not answered, then its latency', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { ask } = await setup(SOLO_MODELS, () => {
      arrived();
      return released;
    });
    const answer = ask('other');
    await arrival;
    expect(byId(await deployments(), 'other/healthy').in_flight).toBe(1);
    release();
    expect(await answer).toBe(200);
    expect(byId(await deployments(), 'other/healthy').in_flight).toBe(0);
    const latency = byId(await deployments(), 'other/healthy').latency_ms;
    expect(latency).not.toBeNull();
    expect(latency).toBeGreaterThanOrEqual(0);
  });
});

describe('/readyz per model', () => {
  it('turns 503 naming the model whose only deployment is open; ready again once half-open', async () => {
    const { clock, ask } = await setup(SOLO_MODELS);
    const before = await readyz();
    expect(before.status).toBe(200);
    // Only models that are not ready are named (the endpoint needs no key).
    expect(before.models).toEqual([]);

    await ask('solo');
    await ask('solo');
    const after = await readyz();
    expect(after.status).toBe(503);
    expect(after.models).toEqual([{ model: 'solo', ready: false, usable: 0, deployments: 1 }]);

    clock.now += COOLDOWN_MS;
    expect((await readyz()).status).toBe(200);
  });

  it('stays 200 while a second deployment or a fallback model is usable', async () => {
    const { ask } = await setup({
      pair: {
        deployments: [
          { backend: 'broken', priority: 0 },
          { backend: 'healthy', priority: 1 },
        ],
        strategy: 'priority',
        retry: TWO_TRIES,
        circuit: CIRCUIT,
      },
      guarded: {
        deployments: [{ backend: 'broken' }],
        fallbacks: ['backup'],
        retry: TWO_TRIES,
        circuit: CIRCUIT,
      },
      backup: { deployments: [{ backend: 'healthy' }], circuit: CIRCUIT },
    });
    // Each request fails on `broken` and is answered by the other deployment or the fallback.
    for (let i = 0; i < 2; i++) {
      expect(await ask('pair')).toBe(200);
      expect(await ask('guarded')).toBe(200);
    }
    const list = await deployments();
    expect(byId(list, 'pair/broken').circuit.state).toBe('open');
    expect(byId(list, 'guarded/broken').circuit.state).toBe('open');
    expect(byId(list, 'pair/healthy').circuit.state).toBe('closed');

    const report = await readyz();
    expect(report.status).toBe(200);
    // 'guarded' has no usable deployment of its own but a usable fallback: ready, so not named.
    expect(report.models).toEqual([]);
  });
});

describe('on a shared store', () => {
  it("shows on one instance the circuit another instance's failures opened (Redis)", async (context) => {
    const redis = await redisForTests();
    if (!redis) return context.skip('no Redis available (see the notice above)');
    // A fresh model name: circuits live in Redis, named after the model and deployment.
    const model = `fleet-${crypto.randomUUID().slice(0, 8)}`;
    const models: ConfigInput['models'] = {
      [model]: { deployments: [{ backend: 'broken' }], retry: ONE_TRY, circuit: CIRCUIT },
    };
    const first = await setup(models, undefined, { redis: { url: redis.url } });
    const second = await startGateway(
      {
        admin: { key: ADMIN },
        readiness: { cacheMs: 0 },
        redis: { url: redis.url },
        backends: {
          broken: { type: 'openai', baseUrl: `${first.brokenUrl}/v1`, apiKey: 'kb' },
          healthy: { type: 'openai', baseUrl: `${first.healthyUrl}/v1`, apiKey: 'kh' },
        },
        models,
      },
      {},
      { clock: () => first.clock.now },
    );
    try {
      expect(await first.ask(model)).toBe(502);
      expect(await first.ask(model)).toBe(502);
      const response = await fetch(`${second.url}/admin/deployments`, {
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      const body = (await response.json()) as { data: DeploymentView[] };
      expect(byId(body.data, `${model}/broken`).circuit).toMatchObject({
        state: 'open',
        retry_after_ms: COOLDOWN_MS,
      });
      const ready = await fetch(`${second.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { models: ModelReadiness[] }).models).toEqual([
        { model, ready: false, usable: 0, deployments: 1 },
      ]);
    } finally {
      await second.close();
      await redis.stop();
    }
  });
});

describe('metrics and the CLI', () => {
  it('/admin/metrics has the circuit gauge and attempts by outcome', async () => {
    const { ask } = await setup(SOLO_MODELS);
    await ask('solo');
    await ask('solo');
    // The circuit is open now: this one is refused without reaching the upstream.
    expect(await ask('solo')).toBe(503);
    await ask('other');
    const response = await admin('/admin/metrics');
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('# TYPE tollgate_deployment_circuit_state gauge');
    expect(text).toContain('tollgate_deployment_circuit_state{model="solo",deployment="broken"} 2');
    expect(text).toContain('tollgate_deployment_circuit_state{model="other",deployment="healthy"} 0');
    expect(text).toContain('tollgate_deployment_attempts_total{deployment="broken",outcome="failure"} 2');
    expect(text).toContain(
      'tollgate_deployment_attempts_total{deployment="broken",outcome="circuit-open"} 1',
    );
    expect(text).toContain('tollgate_deployment_attempts_total{deployment="healthy",outcome="success"} 1');
  });

  it('`tollgate deployments` prints the table and, with --json, the API body', async () => {
    const { ask } = await setup(SOLO_MODELS);
    await ask('solo');
    await ask('solo');
    const env = { TOLLGATE_URL: gw?.url, TOLLGATE_ADMIN_KEY: ADMIN };

    const table = await runCli(['deployments'], env);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual([
      'MODEL',
      'DEPLOYMENT',
      'BACKEND',
      'STATE',
      'FAILURES',
      'IN FLIGHT',
      'LATENCY',
      'LIMITS',
    ]);
    expect(rows[0]?.split(/\s{2,}/)).toEqual([
      'solo',
      'broken',
      'broken',
      'open (1m left)',
      '0',
      '0',
      '-',
      '100 rpm',
    ]);
    expect(rows[1]?.split(/\s{2,}/)).toEqual([
      'other',
      'healthy',
      'healthy',
      'closed (no breaker)',
      '0',
      '0',
      '-',
      '-',
    ]);

    const json = await runCli(['deployments', '--json'], env);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout) as { object: string; data: DeploymentView[] };
    expect(body.object).toBe('list');
    expect(byId(body.data, 'solo/broken').circuit).toMatchObject({
      state: 'open',
      retry_after_ms: COOLDOWN_MS,
    });
  });
});
