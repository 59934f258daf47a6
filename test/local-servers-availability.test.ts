import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminHttp, type ErrorBody, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type FakeLocalServer, startFakeLocalServer } from './support/fake-local-servers.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { expectErrorResponse } from './support/spec-validator.js';

/**
 * A local server that is down: reported in /readyz and GET /admin/deployments, skipped by routing
 * (a model's other deployment serves; a model with no other gets a 503 with retry-after), and
 * taken back once a probe finds it up. Probes are asked for (admin refresh, /readyz) or, where
 * the periodic probe is the subject, waited for by watching the deployment's state.
 */

interface Availability {
  state: string;
  retry_after_ms: number | null;
  checked_at: string | null;
  reason: string | null;
}
interface DeploymentEntry {
  id: string;
  backend: string;
  availability?: Availability;
}
interface Readiness {
  ready: boolean;
  backends: Record<string, { ok: boolean; error?: string; retry_after_ms?: number }>;
  models?: Array<{ model: string; ready: boolean; usable: number; deployments: number }>;
}

let gw: TestGateway | undefined;
const servers: FakeLocalServer[] = [];

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

const HOUR = 3_600_000;

async function setup(retryMs = HOUR) {
  const a = await startFakeLocalServer('vllm', { models: ['m'] });
  const b = await startFakeLocalServer('ollama', { models: ['m'] });
  servers.push(a, b);
  const discovery = { refreshMs: HOUR, retryMs };
  gw = await startGateway({
    admin: { key: TEST_ADMIN_KEY },
    readiness: { cacheMs: 0 },
    backends: {
      a: { type: 'vllm', baseUrl: a.baseUrl, discovery },
      b: { type: 'ollama', baseUrl: b.baseUrl, discovery },
    },
    models: {
      shared: {
        strategy: 'priority',
        deployments: [
          { backend: 'a', model: 'm', priority: 0 },
          { backend: 'b', model: 'm', priority: 1 },
        ],
      },
      solo: { backend: 'a', model: 'm' },
    },
  });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  const admin = new AdminHttp(gw.url);
  const ask = async (model: string) => {
    const { response } = await client.chat.completions
      .create({ model, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    return {
      backend: response.headers.get('x-tollgate-backend'),
      attempts: response.headers.get('x-tollgate-attempts'),
    };
  };
  const deployments = async () =>
    (await admin.ok<{ data: DeploymentEntry[] }>('GET', '/deployments', undefined, 200)).data;
  const readyz = async () => {
    const response = await fetch(`${gw?.url}/readyz`);
    return { status: response.status, body: (await response.json()) as Readiness };
  };
  return { a, b, client, admin, ask, deployments, readyz };
}

const onBackend = (list: DeploymentEntry[], backend: string) =>
  list.filter((deployment) => deployment.backend === backend);

describe('a local server that is down', () => {
  it('is reported, skipped by routing, 503 alone, and taken back after a refresh finds it up', async () => {
    const { a, ask, admin, deployments, readyz } = await setup();
    expect(await ask('shared')).toEqual({ backend: 'a', attempts: '1' });
    expect((await readyz()).status).toBe(200);
    for (const deployment of onBackend(await deployments(), 'a'))
      expect(deployment.availability).toMatchObject({
        state: 'available',
        retry_after_ms: null,
        reason: null,
      });

    await a.stop();
    const refused = await admin.call<ErrorBody>('POST', '/backends/a/refresh');
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'service_unavailable', type: 'server_error' });
    expect(refused.body.error.message).toMatch(
      /^Backend 'a' did not answer: connection refused\. Routing skips it/,
    );
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    // GET /admin/deployments: every deployment on `a` says so; those on `b` are available.
    const list = await deployments();
    expect(
      onBackend(list, 'a')
        .map((deployment) => deployment.id)
        .sort(),
    ).toEqual(['shared/a', 'solo/a']);
    for (const deployment of onBackend(list, 'a')) {
      expect(deployment.availability).toMatchObject({ state: 'unavailable', reason: 'connection refused' });
      expect(deployment.availability?.retry_after_ms).toBeGreaterThan(0);
      expect(deployment.availability?.retry_after_ms).toBeLessThanOrEqual(HOUR);
    }
    expect(onBackend(list, 'b')[0]?.availability?.state).toBe('available');

    // /readyz: the backend, and the model that has no other deployment.
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.backends.a).toMatchObject({ ok: false });
    expect(down.body.backends.a?.error).toBe("Backend 'a' (vLLM) is down: connection refused.");
    expect(down.body.backends.a?.retry_after_ms).toBeGreaterThan(0);
    expect(down.body.backends.b).toEqual({ ok: true });
    expect(down.body.models).toEqual([{ model: 'solo', ready: false, usable: 0, deployments: 1 }]);
    // Nothing names the server's address on this public endpoint.
    expect(JSON.stringify(down.body)).not.toContain(String(new URL(a.baseUrl).port));

    // Routing: the other deployment serves, with no attempt on the one that is down.
    expect(await ask('shared')).toEqual({ backend: 'b', attempts: '1' });
    const alone = await fetch(`${gw?.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'solo', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(alone.status).toBe(503);
    const retryAfter = Number(alone.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(HOUR / 1_000);
    const body = (await alone.json()) as ErrorBody;
    expectErrorResponse(body);
    expect(body.error.code).toBe('upstream_unavailable');

    // Back up: a refresh finds it, and it serves again.
    await a.start();
    const back = await admin.ok<{ availability: Availability; data: Array<{ id: string }> }>(
      'POST',
      '/backends/a/refresh',
      undefined,
      200,
    );
    expect(back.availability).toMatchObject({ state: 'available', retry_after_ms: null });
    expect(back.data.map((model) => model.id)).toEqual(['m']);
    expect(await ask('shared')).toEqual({ backend: 'a', attempts: '1' });
    expect(await ask('solo')).toEqual({ backend: 'a', attempts: '1' });
    expect((await readyz()).status).toBe(200);
  });

  it('a refused request makes the gateway probe it; once found down, requests skip it', async () => {
    const { a, ask, deployments } = await setup();
    await ask('shared');
    await a.stop();
    // The first request finds out the hard way and is retried on the other deployment...
    expect(await ask('shared')).toEqual({ backend: 'b', attempts: '2' });
    // ...and the probe it set off marks the server down, so the next one is not sent there at all.
    const list = await pollUntil(deployments, (current) =>
      onBackend(current, 'a').every((deployment) => deployment.availability?.state === 'unavailable'),
    );
    expect(onBackend(list, 'a')[0]?.availability?.reason).toBe('connection refused');
    expect(await ask('shared')).toEqual({ backend: 'b', attempts: '1' });
  });

  it('the periodic probe (discovery.retryMs) takes it back without anyone asking', async () => {
    const { a, admin, ask, deployments } = await setup(50);
    await a.stop();
    expect((await admin.call('POST', '/backends/a/refresh')).status).toBe(503);
    // Probed again every 50 ms, it stays down while nothing listens.
    expect(onBackend(await deployments(), 'a')[0]?.availability?.state).toBe('unavailable');
    await a.start();
    const list = await pollUntil(deployments, (current) =>
      onBackend(current, 'a').every((deployment) => deployment.availability?.state === 'available'),
    );
    expect(onBackend(list, 'a')[0]?.availability?.state).toBe('available');
    expect(await ask('solo')).toEqual({ backend: 'a', attempts: '1' });
  });
});
