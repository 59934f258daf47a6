import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * A module that throws one shared error instance again and again gets it back unchanged: the
 * gateway filters the headers it relays on a copy, not on the module's object.
 */

let gw: TestGateway;
const SHARED = Symbol.for('tollgate.test.shared-module-error');

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-shared-error-'));
  const errors = new URL('../src/errors.ts', import.meta.url).href;
  writeFileSync(
    join(dir, 'shared.mjs'),
    `import { UpstreamClientError } from ${JSON.stringify(errors)};
const shared = new UpstreamClientError(409, Buffer.from('{"error":{"message":"busy","type":"invalid_request_error"}}'), 'application/json', { 'x-mine': 'a', 'set-cookie': 'b=c' });
globalThis[Symbol.for('tollgate.test.shared-module-error')] = shared;
export default function createBackend() {
  return { supports: () => true, async send() { throw shared; } };
}
`,
  );
  gw = await startGateway({
    backends: { shared: { type: 'module', module: join(dir, 'shared.mjs') } },
    models: { m: { backend: 'shared', retry: { attempts: 1 } } },
  });
  await pollUntil(
    async () => (await fetch(`${gw.url}/readyz`)).status,
    (status) => status === 200,
  );
});

afterAll(async () => {
  await gw?.close();
});

describe('a module’s shared error', () => {
  it('is relayed with only the module’s own headers, and left as it was', async () => {
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(response.status).toBe(409);
      expect(response.headers.get('set-cookie')).toBeNull();
      await response.text();
    }
    const shared = (globalThis as Record<symbol, { headers: Record<string, string> }>)[SHARED];
    expect(shared?.headers).toEqual({ 'x-mine': 'a', 'set-cookie': 'b=c' });
  });
});
