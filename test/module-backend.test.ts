import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { loadConfig, parseConfig } from '../src/config/load-config.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * `type: module`: where the module is found (relative to the config file's folder, absolute, a
 * file: URL, a package) and every way it can fail at boot, each in our words.
 */

const silent = pino({ level: 'silent' });

/** A module that answers chat with a fixed text (enough to see it was loaded and called). */
const FIXED_ANSWER_MODULE = `
export default function createBackend(name, options) {
  return {
    supports: (endpoint) => endpoint === 'chat.completions',
    async send({ model }) {
      const body = {
        id: 'chatcmpl-1', object: 'chat.completion', created: 1, model,
        choices: [{ index: 0, message: { role: 'assistant', content: options.answer, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      };
      return { status: 200, contentType: 'application/json', headers: {}, body: [JSON.stringify(body)] };
    },
  };
}
`;

function folder(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tollgate-module-backend-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function moduleConfig(module: string, extra: Record<string, unknown> = {}, configDir?: string) {
  return parseConfig(
    {
      backends: { mine: { type: 'module', module, options: { answer: 'from the module' }, ...extra } },
      models: { m: { backend: 'mine' } },
    },
    {},
    'test',
    configDir,
  );
}

/** The boot error for a module backend, as the operator reads it. */
async function bootError(module: string, extra: Record<string, unknown> = {}, configDir?: string) {
  const error: unknown = await BackendRegistry.fromConfig(
    moduleConfig(module, extra, configDir),
    silent,
  ).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(Error);
  return (error as Error).message;
}

let gateway: TestGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

describe('loading a module backend', () => {
  it('resolves a relative path against the config file’s folder, not the working directory', async () => {
    const root = folder({
      'conf/tollgate.yaml': `backends:
  mine:
    type: module
    module: ./backends/mine.mjs
    options: { answer: relative }
models:
  m: { backend: mine }
`,
      'conf/backends/mine.mjs': FIXED_ANSWER_MODULE,
    });
    expect(process.cwd()).not.toBe(join(root, 'conf'));
    const config = loadConfig({ path: join(root, 'conf/tollgate.yaml'), env: {} });
    expect(config.configDir).toBe(join(root, 'conf'));
    const registry = await BackendRegistry.fromConfig(config, silent);
    try {
      const backend = registry.get('mine');
      expect(backend.type).toBe('module');
      const response = await backend.send({
        kind: 'json',
        endpoint: 'chat.completions',
        model: 'm',
        body: { model: 'm', messages: [{ role: 'user', content: 'x' }] },
        stream: false,
        signal: new AbortController().signal,
        requestId: 'req_1',
      });
      const parts: Buffer[] = [];
      for await (const chunk of response.body) parts.push(chunk);
      expect(JSON.parse(Buffer.concat(parts).toString()).choices[0].message.content).toBe('relative');
    } finally {
      await registry.close();
    }
  });

  it('without a config file, resolves a relative path against the working directory', () => {
    expect(moduleConfig('./x.mjs').configDir).toBe(process.cwd());
  });

  it('loads an absolute path and answers an OpenAI SDK call through the gateway', async () => {
    const root = folder({ 'mine.mjs': FIXED_ANSWER_MODULE });
    gateway = await startGateway({
      backends: { mine: { type: 'module', module: join(root, 'mine.mjs'), options: { answer: 'absolute' } } },
      models: { m: { backend: 'mine' } },
    });
    const client = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('absolute');
  });

  it('loads a file: URL', async () => {
    const root = folder({ 'mine.mjs': FIXED_ANSWER_MODULE });
    const registry = await BackendRegistry.fromConfig(
      moduleConfig(pathToFileURL(join(root, 'mine.mjs')).href),
      silent,
    );
    expect(registry.get('mine').supports('chat.completions')).toBe(true);
    expect(registry.get('mine').supports('embeddings')).toBe(false);
    await registry.close();
  });

  it('takes a named createBackend export as well as a default one', async () => {
    const root = folder({
      'named.mjs': FIXED_ANSWER_MODULE.replace('export default function', 'export function'),
    });
    const registry = await BackendRegistry.fromConfig(moduleConfig('./named.mjs', {}, root), silent);
    expect(registry.get('mine').supports('chat.completions')).toBe(true);
    await registry.close();
  });

  it('hands the factory its name, a copy of its options and a context', async () => {
    const root = folder({
      'context.mjs': `export default function createBackend(name, options, context) {
  options.mutated = true;
  globalThis[Symbol.for('tollgate.test.factory-seen')] = {
    name,
    options,
    configDir: context.configDir,
    logs: typeof context.logger.info,
    signal: context.signal instanceof AbortSignal,
  };
  return { supports: () => false, send: async () => { throw new Error('unused'); } };
}`,
    });
    const config = moduleConfig('./context.mjs', { options: { answer: 'x', nested: { n: 1 } } }, root);
    const registry = await BackendRegistry.fromConfig(config, silent);
    const seen = (globalThis as Record<symbol, unknown>)[Symbol.for('tollgate.test.factory-seen')];
    expect(seen).toEqual({
      name: 'mine',
      options: { answer: 'x', nested: { n: 1 }, mutated: true },
      configDir: root,
      logs: 'function',
      signal: true,
    });
    // The config itself stays as parsed.
    expect(config.backends.mine).toMatchObject({ options: { answer: 'x', nested: { n: 1 } } });
    await registry.close();
  });
});

describe('boot errors, in our words', () => {
  it('a path that does not exist', async () => {
    const root = folder({});
    const message = await bootError('./backends/missing.mjs', {}, root);
    expect(message).toBe(
      `backends.mine: module './backends/missing.mjs' not found (looked for ${join(root, 'backends/missing.mjs')})`,
    );
  });

  it('a package that is not installed', async () => {
    const message = await bootError('tollgate-no-such-backend-package');
    expect(message).toMatch(
      /^backends\.mine: module 'tollgate-no-such-backend-package' not found: a package name/,
    );
  });

  it('a module that fails to load (a syntax error)', async () => {
    const root = folder({ 'broken.mjs': 'export default function (\n' });
    expect(await bootError('./broken.mjs', {}, root)).toMatch(
      /^backends\.mine: module '\.\/broken\.mjs' failed to load: /,
    );
  });

  it('a module (here a package) with no factory export', async () => {
    expect(await bootError('yaml')).toBe(
      "backends.mine: module 'yaml' exports no backend factory: export a function createBackend(name, options, context), as its default export or named createBackend",
    );
    const root = folder({ 'none.mjs': 'export const createBackend = 42;\n' });
    expect(await bootError('./none.mjs', {}, root)).toMatch(/exports no backend factory/);
  });

  it('a factory that throws, synchronously or not', async () => {
    const root = folder({
      'throws.mjs': "export default function () { throw new Error('no GPU here'); }\n",
      'rejects.mjs': "export default async function () { throw new Error('cannot reach the service'); }\n",
    });
    expect(await bootError('./throws.mjs', {}, root)).toBe(
      "backends.mine: module './throws.mjs': createBackend threw: no GPU here",
    );
    expect(await bootError('./rejects.mjs', {}, root)).toBe(
      "backends.mine: module './rejects.mjs': createBackend threw: cannot reach the service",
    );
  });

  it('a factory that never returns, within timeoutMs', async () => {
    const root = folder({
      'hangs.mjs': `export default function (name, options, { signal }) {
  return new Promise((resolve) => signal.addEventListener('abort', () => {
    globalThis[Symbol.for('tollgate.test.factory-aborted')] = true;
  }));
}\n`,
    });
    expect(await bootError('./hangs.mjs', { timeoutMs: 30 }, root)).toBe(
      "backends.mine: module './hangs.mjs': createBackend did not return a backend within timeoutMs (30 ms)",
    );
    // The factory is told boot gave up on it.
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('tollgate.test.factory-aborted')]).toBe(true);
  });

  it('a factory that returns something without the Backend methods', async () => {
    const root = folder({
      'nothing.mjs': 'export default function () { return undefined; }\n',
      'no-send.mjs': 'export default function () { return { supports: () => true }; }\n',
      'bare.mjs': 'export default function () { return {}; }\n',
      'wrong.mjs':
        'export default function () { return { supports: () => true, send: async () => {}, close: "soon" }; }\n',
    });
    expect(await bootError('./nothing.mjs', {}, root)).toBe(
      "backends.mine: module './nothing.mjs': createBackend returned undefined, not a backend object",
    );
    expect(await bootError('./no-send.mjs', {}, root)).toMatch(
      /^backends\.mine: module '\.\/no-send\.mjs': the backend createBackend returned lacks send\(\) \(a backend needs send\(\) and supports\(\)/,
    );
    expect(await bootError('./bare.mjs', {}, root)).toMatch(/lacks send\(\) and supports\(\)/);
    expect(await bootError('./wrong.mjs', {}, root)).toMatch(/has close that is not a function/);
  });

  it('a module backend without a module is a config error', () => {
    expect(() =>
      parseConfig({ backends: { mine: { type: 'module' } }, models: { m: { backend: 'mine' } } }, {}, 'test'),
    ).toThrow(/backends\.mine\.module: /);
  });

  it('another backend that started is closed when a module fails at boot', async () => {
    const root = folder({
      'ok.mjs': `export default function () {
  return { supports: () => true, send: async () => { throw new Error('unused'); },
    close: async () => { globalThis[Symbol.for('tollgate.test.closed')] = true; } };
}\n`,
      'throws.mjs': "export default function () { throw new Error('boom'); }\n",
    });
    const config = parseConfig(
      {
        backends: {
          ok: { type: 'module', module: './ok.mjs' },
          bad: { type: 'module', module: './throws.mjs' },
        },
        models: { m: { backend: 'ok' } },
      },
      {},
      'test',
      root,
    );
    await expect(BackendRegistry.fromConfig(config, silent)).rejects.toThrow(
      "backends.bad: module './throws.mjs': createBackend threw: boom",
    );
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('tollgate.test.closed')]).toBe(true);
  });
});
