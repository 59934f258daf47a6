import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Backend, BackendResponse } from '../src/backends/backend.js';
import { LocalServerBackend } from '../src/backends/local-servers/local-server-backend.js';
import { OpenAICompatibleBackend } from '../src/backends/openai-compatible/openai-compatible-backend.js';
import { BackendRegistry } from '../src/backends/registry.js';
import { parseConfig } from '../src/config/load-config.js';
import type { LocalServerConfig } from '../src/config/local-server-schema.js';
import { ModelRouter } from '../src/pipeline/router.js';

/**
 * `GET /v1/models` and a backend that cannot list: a failed or timed-out list is remembered (the
 * backend is skipped at once, asked again in the background 30 s later), a local server's
 * listing honours its abort, and its first probe is waited on by one listing only. Lists are
 * read up to a size limit, not whole.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP port that accepts connections and never answers (a hung server). */
async function blackHole(): Promise<{ port: number; connected: Promise<unknown> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
  });
  const connected = once(server, 'connection');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, connected };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((done, fail) => {
    resolve = done;
    reject = fail;
  });
  return { promise, resolve, reject };
}

/** A backend whose listModels the test scripts; counts the calls. */
function scriptedBackend(name: string, listModels: (signal: AbortSignal) => Promise<string[]>) {
  const backend: Backend & { calls: number } = {
    name,
    type: 'scripted',
    calls: 0,
    supports: () => true,
    send: (): Promise<BackendResponse> => Promise.reject(new Error('not used')),
    listModels(signal) {
      backend.calls++;
      return listModels(signal);
    },
    checkHealth: async () => {},
    close: async () => {},
  };
  return backend;
}

function routerFor(backend: Backend, options: { now?: () => number; listTimeoutMs?: number }) {
  const config = parseConfig(
    {
      backends: { [backend.name]: { type: 'mock' } },
      models: { 'm/*': { backend: backend.name }, fixed: { backend: backend.name } },
    },
    {},
    'test',
  );
  return new ModelRouter(config, new BackendRegistry([backend]), options);
}

const ids = async (router: ModelRouter) => (await router.list()).map((card) => card.id);

describe('a backend whose model list fails', () => {
  it('is asked once: later listings skip it at once; 30 s on, one is asked again in the background', async () => {
    let clock = 1_000_000;
    let answer = deferred<string[]>();
    answer.reject(new Error('list refused'));
    const backend = scriptedBackend('mine', () => answer.promise);
    const router = routerFor(backend, { now: () => clock });

    expect(await ids(router)).toEqual(['fixed']);
    expect(backend.calls).toBe(1);
    // Remembered: not asked again, nobody waits on it.
    expect(await ids(router)).toEqual(['fixed']);
    clock += 29_999;
    expect(await ids(router)).toEqual(['fixed']);
    expect(backend.calls).toBe(1);

    // Due again: this listing does not wait for it; the ask runs behind it.
    clock += 1;
    answer = deferred<string[]>();
    expect(await ids(router)).toEqual(['fixed']);
    expect(backend.calls).toBe(2);
    // Another listing meanwhile does not ask a second time.
    expect(await ids(router)).toEqual(['fixed']);
    expect(backend.calls).toBe(2);
    answer.resolve(['tiny', 'small']);
    await answer.promise;
    // Its answer is kept for the next listings.
    await vi.waitFor(async () => expect(await ids(router)).toEqual(['fixed', 'm/tiny', 'm/small']));
    expect(backend.calls).toBe(2);
  });

  it('one that never answers (and ignores its signal) is given up on after the list timeout, and remembered', async () => {
    const backend = scriptedBackend('mine', () => new Promise<string[]>(() => {}));
    const router = routerFor(backend, { listTimeoutMs: 20 });
    expect(await ids(router)).toEqual(['fixed']);
    expect(await ids(router)).toEqual(['fixed']);
    expect(backend.calls).toBe(1);
  });

  it('one that lists is kept for a minute, as before', async () => {
    let clock = 0;
    const backend = scriptedBackend('mine', async () => ['a']);
    const router = routerFor(backend, { now: () => clock });
    expect(await ids(router)).toEqual(['fixed', 'm/a']);
    clock += 59_999;
    expect(await ids(router)).toEqual(['fixed', 'm/a']);
    expect(backend.calls).toBe(1);
    clock += 1;
    expect(await ids(router)).toEqual(['fixed', 'm/a']);
    expect(backend.calls).toBe(2);
  });
});

function localServer(baseUrl: string): LocalServerBackend {
  const config = parseConfig(
    {
      backends: {
        srv: {
          type: 'ollama',
          baseUrl,
          discovery: { refreshMs: 3_600_000, retryMs: 3_600_000, timeoutMs: 600_000 },
        },
      },
      models: { 'local/*': { backend: 'srv' } },
    },
    {},
    'test',
  );
  const backend = new LocalServerBackend('srv', config.backends.srv as LocalServerConfig);
  cleanups.push(() => backend.close());
  return backend;
}

describe('a local server whose first probe gets no answer', () => {
  it('listModels gives up when its signal aborts, though the probe waits on', async () => {
    const hole = await blackHole();
    const backend = localServer(`http://127.0.0.1:${hole.port}/v1`);
    await hole.connected;
    const controller = new AbortController();
    const listing = backend.listModels(controller.signal);
    controller.abort(new Error('caller gave up'));
    await expect(listing).rejects.toThrow('caller gave up');
    expect(backend.discoveryState().state).toBe('unknown');
  });

  it('is waited on by one listing only; later ones skip it while the probe goes on', async () => {
    const hole = await blackHole();
    const backend = localServer(`http://127.0.0.1:${hole.port}/v1`);
    const listModels = vi.spyOn(backend, 'listModels');
    const router = routerFor(backend, { listTimeoutMs: 20 });
    expect(await ids(router)).toEqual(['fixed']);
    expect(listModels).toHaveBeenCalledTimes(1);
    expect(await ids(router)).toEqual(['fixed']);
    expect(listModels).toHaveBeenCalledTimes(1);
    expect(backend.discoveryState().state).toBe('unknown');
  });
});

describe("an OpenAI-compatible upstream's model list", () => {
  it('is read up to 16 MB and no further: an endless one is cut off and fails the list', async () => {
    let written = 0;
    const closed = deferred<void>();
    const chunk = Buffer.from(`${'{"id":"model","object":"model"},'.repeat(2_000)}`);
    const server: HttpServer = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"object":"list","data":[');
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
      };
      res.on('drain', pump);
      res.on('close', () => closed.resolve());
      req.resume();
      pump();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const config = parseConfig(
      {
        backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test' } },
        models: { m: { backend: 'up' } },
      },
      {},
      'test',
    );
    const backend = new OpenAICompatibleBackend(
      'up',
      config.backends.up as Extract<(typeof config.backends)[string], { type: 'openai' }>,
    );
    cleanups.push(() => backend.close());
    await expect(backend.listModels(new AbortController().signal)).rejects.toThrow(
      "Backend 'up' answered a model list larger than 16 MB.",
    );
    // The gateway hung up: the server stops writing, having sent little more than the limit.
    await closed.promise;
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });
});
