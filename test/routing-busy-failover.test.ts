import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * A deployment whose own queue is full (an in-process model's slots and queue taken: a
 * BackendBusyError, 429) is a failure another deployment can fix: routing goes on to the next,
 * as it does for an upstream's 429.
 */

let gw: TestGateway;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-busy-'));
  const errors = new URL('../src/errors.ts', import.meta.url).href;
  writeFileSync(
    join(dir, 'busy.mjs'),
    `import { BackendBusyError } from ${JSON.stringify(errors)};
export default function createBackend() {
  return {
    supports: () => true,
    async send() { throw new BackendBusyError('Every slot of this backend is busy and its queue is full.'); },
  };
}
`,
  );
  gw = await startGateway({
    backends: {
      busy: { type: 'module', module: join(dir, 'busy.mjs') },
      mock: { type: 'mock' },
    },
    models: {
      pool: {
        strategy: 'priority',
        deployments: [{ backend: 'busy' }, { backend: 'mock', priority: 1 }],
        retry: { attempts: 2 },
      },
      'busy-only': { backend: 'busy', retry: { attempts: 1 } },
    },
  });
  // The module loads once the gateway listens; routing skips it until then.
  await pollUntil(
    async () => (await fetch(`${gw.url}/readyz`)).status,
    (status) => status === 200,
  );
});

afterAll(async () => {
  await gw?.close();
});

describe('a busy deployment', () => {
  it('is failed over to the next deployment', async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ model: 'pool', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBeTruthy();
    expect(response.headers.get('x-tollgate-backend')).toBe('mock');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
  });

  it('with nowhere else to go, is the 429 it was, with retry-after', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'busy-only', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
  });
});
