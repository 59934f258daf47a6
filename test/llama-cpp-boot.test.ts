import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LlamaCppBackend } from '../src/backends/llama-cpp/llama-cpp-backend.js';
import { BackendRegistry } from '../src/backends/registry.js';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import type { ConfigInput } from '../src/config/schema.js';
import { tinyGguf, writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

let gw: TinyModelGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

function problemsOf(backend: Record<string, unknown>): string[] {
  try {
    parseConfig(
      { backends: { local: { type: 'llama-cpp', ...backend } }, models: { tiny: { backend: 'local' } } },
      {},
      'test',
    );
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('boot', () => {
  it('is not ready while its model loads, and ready once it has loaded', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    gw = await startTinyModelGateway({ backend: { model: writeTinyGguf() }, loadGate: gate });

    const loading = await fetch(`${gw.url}/readyz`);
    expect(loading.status).toBe(503);
    const report = (await loading.json()) as { backends: Record<string, { ok: boolean; error: string }> };
    expect(report.backends.local).toMatchObject({ ok: false, error: "Backend 'local' is loading tiny." });
    // Routing skips it meanwhile, with a retry hint.
    const early = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('1');

    release();
    await gw.backend.loaded;
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    const served = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    expect(served.status).toBe(200);
  });

  it('lists every problem of its config in words: missing file or folder, no .gguf, neither or both', () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-empty-'));
    expect(problemsOf({ model: '/nowhere/model.gguf' })).toEqual([
      'backends.local.model: the model file /nowhere/model.gguf does not exist',
    ]);
    expect(problemsOf({ models: '/nowhere' })).toEqual([
      'backends.local.models: the models folder /nowhere does not exist',
    ]);
    expect(problemsOf({ models: folder })).toEqual([
      `backends.local.models: the models folder ${folder} holds no .gguf file`,
    ]);
    // A folder named like a model is no model.
    const onlyDir = mkdtempSync(join(tmpdir(), 'tollgate-dir-only-'));
    mkdirSync(join(onlyDir, 'x.gguf'));
    expect(problemsOf({ models: onlyDir })).toEqual([
      `backends.local.models: the models folder ${onlyDir} holds no .gguf file`,
    ]);
    expect(problemsOf({ model: folder })[0]).toContain('is a folder: use models');
    expect(problemsOf({})).toEqual([
      'backends.local: takes model (a .gguf file) or models (a folder of .gguf files), exactly one of them',
    ]);
    expect(problemsOf({ model: writeTinyGguf(), slots: 0, threads: 'many' })).toHaveLength(2);
  });

  it('serves each .gguf of a models folder by its file name; one that fails to load is reported', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-models-'));
    writeTinyGguf('alpha', folder, { seed: 1 });
    writeTinyGguf('beta', folder, { seed: 2 });
    writeFileSync(join(folder, 'broken.gguf'), 'GGUF but not really a model');
    writeFileSync(join(folder, 'cut.gguf'), tinyGguf().subarray(0, 100_000));
    gw = await startTinyModelGateway({ backend: { models: folder }, models: { '*': { backend: 'local' } } });
    await gw.backend.loaded;

    const ask = (model: string) =>
      fetch(`${gw?.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model,
          messages: [{ role: 'user', content: 'hello' }],
          max_tokens: 6,
          temperature: 0,
        }),
      });
    const alpha = await ask('alpha');
    const beta = await ask('beta');
    expect(alpha.status).toBe(200);
    expect(beta.status).toBe(200);
    const text = async (response: Response) =>
      ((await response.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message
        .content;
    // Different weights, different noise: each name reached its own model.
    expect(await text(alpha)).not.toBe(await text(beta));
    expect((await ask('gamma')).status).toBe(404);
    expect((await ask('broken')).status).toBe(503);
    expect((await ask('cut')).status).toBe(503);

    const models = (await (await fetch(`${gw.baseURL}/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((model) => model.id)).toEqual(expect.arrayContaining(['alpha', 'beta']));
    await expect(gw.backend.checkHealth()).rejects.toThrow("Backend 'local' could not load broken, cut;");
    expect(
      gw
        .backendLogs()
        .some((line) => line.msg === 'llama-cpp model failed to load' && line.model === 'broken'),
    ).toBe(true);
  });

  it('is built by the registry from config, importing node-llama-cpp only then', async () => {
    const input: ConfigInput = {
      backends: { local: { type: 'llama-cpp', model: writeTinyGguf(), threads: 1 } },
      models: { tiny: { backend: 'local' } },
    };
    const config = parseConfig(input, {}, 'test');
    const registry = await BackendRegistry.fromConfig(config, pino({ level: 'silent' }));
    try {
      // The registry wraps a backend (the Responses and Messages API translations): look inside.
      let backend = registry.get('local');
      while ('inner' in backend) backend = backend.inner as typeof backend;
      expect(backend).toBeInstanceOf(LlamaCppBackend);
      await (backend as LlamaCppBackend).loaded;
      await backend.checkHealth(AbortSignal.timeout(10_000));
      const answer = await backend.send({
        kind: 'json',
        endpoint: 'completions',
        model: 'tiny',
        body: { model: 'tiny', prompt: 'hello', max_tokens: 3 },
        stream: false,
        signal: new AbortController().signal,
        requestId: 'req_test',
      });
      const chunks = [...(answer.body as Iterable<Buffer>)];
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        usage: { completion_tokens: number };
      };
      expect(body.usage.completion_tokens).toBe(3);
    } finally {
      await registry.close();
    }
  });
});

describe('node-llama-cpp stays unloaded unless configured', () => {
  it('is imported at run time only by load-node-llama-cpp.ts; every other use is a type', () => {
    const folder = join(fileURLToPath(new URL('../src', import.meta.url)));
    const files = readdirSync(folder, { recursive: true, encoding: 'utf8' }).filter((name) =>
      name.endsWith('.ts'),
    );
    const loaders: string[] = [];
    for (const name of files) {
      const text = readFileSync(join(folder, name), 'utf8');
      if (text.includes("import('node-llama-cpp')")) loaders.push(name);
      for (const match of text.matchAll(/^import (type )?[^;]*?from 'node-llama-cpp';/gms))
        expect(match[1], `${name}: ${match[0]}`).toBe('type ');
    }
    expect(loaders).toEqual([join('backends', 'llama-cpp', 'load-node-llama-cpp.ts')]);
  });
});
