import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { type AppDeps, buildApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { ConnectionReaper } from '../../src/http/connection-reaper.js';

export interface TestGateway {
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Base URL for the OpenAI SDK. */
  baseURL: string;
  /** Every JSON log line the gateway wrote. */
  logs: Array<Record<string, unknown>>;
  /** The raw log text, to search for anything that must never be logged. */
  rawLogs: () => string;
  /**
   * Closes as `serve` does on SIGTERM, less the grace period: waits for the requests in flight,
   * and closes each connection as soon as it carries none (see ConnectionReaper).
   */
  close: () => Promise<void>;
}

/** Builds the real app from a config document (as a user would write it) and listens on a free port. */
export async function startGateway(
  input: ConfigInput,
  env: NodeJS.ProcessEnv = {},
  deps: Omit<AppDeps, 'logDestination'> = {},
): Promise<TestGateway> {
  // Gateway-core tests run open (auth: none) unless they configure auth; state goes to a
  // fresh temporary directory, never the working tree.
  const config = parseConfig(
    {
      log: { level: 'info' },
      auth: 'none',
      dataDir: mkdtempSync(join(tmpdir(), 'tollgate-test-')),
      ...input,
      server: { host: '127.0.0.1', port: 0, ...input.server },
    },
    env,
    'test',
  );
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const app = await buildApp(config, { ...deps, logDestination: destination });
  const connections = new ConnectionReaper(app.server);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  return {
    app,
    url,
    baseURL: `${url}/v1`,
    get logs() {
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    rawLogs: () => lines.join('\n'),
    close: () => {
      connections.start();
      return app.close();
    },
  };
}

/** A gateway with one OpenAI-compatible backend (`upstream`) and a `mock` model. */
export function upstreamConfig(baseUrl: string, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    backends: {
      upstream: { type: 'openai', baseUrl: `${baseUrl}/v1`, apiKey: 'sk-upstream-secret-123' },
      mock: { type: 'mock' },
      ...extra.backends,
    },
    models: {
      'gpt-test': { backend: 'upstream', model: 'upstream-gpt' },
      'org/model-a': { backend: 'upstream', model: 'model-a' },
      mock: { backend: 'mock' },
      ...extra.models,
    },
    ...(extra.server ? { server: extra.server } : {}),
  };
}
