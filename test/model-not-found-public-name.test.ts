import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * A backend that does not know a model answers in the name it was given, the upstream's; the
 * client hears of the model it sent (`mine/nope`, routed by `mine/*` as `nope`).
 */

let gw: TestGateway;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-not-found-'));
  const errors = new URL('../src/errors.ts', import.meta.url).href;
  writeFileSync(
    join(dir, 'picky.mjs'),
    `import { ModelNotFoundError } from ${JSON.stringify(errors)};
export default function createBackend() {
  return { supports: () => true, async send(call) { throw new ModelNotFoundError(call.model); } };
}
`,
  );
  gw = await startGateway({
    backends: { picky: { type: 'module', module: join(dir, 'picky.mjs') } },
    models: { 'mine/*': { backend: 'picky' } },
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

describe('model_not_found from a backend', () => {
  it('names the model the client sent', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mine/nope', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: { message: string; code: string; param: string } };
    expect(error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(error.message).toContain("'mine/nope'");
  });
});
