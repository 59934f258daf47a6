import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load-config.js';

function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('boots with no config at all: memory store and the mock model', () => {
    const config = loadConfig({ env: {} });
    expect(Object.keys(config.models)).toEqual(['mock']);
    expect(config.backends.mock?.type).toBe('mock');
    expect(config.redis).toBeUndefined();
    expect(config.server.port).toBe(8080);
    expect(config.server.bodyLimit).toBe(20 * 1024 * 1024);
  });

  it('with OPENAI_API_KEY (and OPENAI_BASE_URL) routes every other model to that upstream', () => {
    const config = loadConfig({
      env: { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' },
    });
    expect(config.models['*']).toEqual({ backend: 'openai' });
    expect(config.backends.openai).toMatchObject({
      type: 'openai',
      apiKey: 'sk-x',
      baseUrl: 'http://127.0.0.1:11434/v1',
    });
    expect(loadConfig({ env: { OPENAI_API_KEY: 'sk-x' } }).backends.openai).toMatchObject({
      baseUrl: 'https://api.openai.com/v1',
    });
  });

  it('reads YAML and JSON files, interpolating ${ENV} and ${ENV:-default} in values', () => {
    const yaml = file(
      'tollgate.yaml',
      [
        'server: { port: 9000, bodyLimit: 5mb }',
        'backends:',
        '  up: { type: openai, baseUrl: "${UP_URL:-http://127.0.0.1:1/v1}", apiKey: "${UP_KEY}" }',
        'models:',
        '  small: { backend: up, model: "${SMALL_NAME}" }',
      ].join('\n'),
    );
    const config = loadConfig({
      path: yaml,
      env: { UP_KEY: 'secret: with yaml: syntax', SMALL_NAME: 'llama3' },
    });
    expect(config.backends.up).toMatchObject({
      apiKey: 'secret: with yaml: syntax',
      baseUrl: 'http://127.0.0.1:1/v1',
    });
    expect(config.models.small?.model).toBe('llama3');
    expect(config.server.bodyLimit).toBe(5 * 1024 * 1024);
    const json = file(
      'tollgate.json',
      JSON.stringify({ backends: { m: { type: 'mock' } }, models: { x: { backend: 'm' } } }),
    );
    expect(Object.keys(loadConfig({ path: json, env: {} }).models)).toEqual(['x']);
  });

  it('takes the path from TOLLGATE_CONFIG', () => {
    const path = file('c.yaml', 'backends: { m: { type: mock } }\nmodels: { only: { backend: m } }\n');
    expect(Object.keys(loadConfig({ env: { TOLLGATE_CONFIG: path } }).models)).toEqual(['only']);
  });

  it('lets PORT, HOST, REDIS_URL and LOG_LEVEL override the file', () => {
    const config = parseConfig(
      { server: { port: 1 }, backends: { m: { type: 'mock' } }, models: {} },
      { PORT: '7777', HOST: '127.0.0.1', REDIS_URL: 'redis://127.0.0.1:6379', LOG_LEVEL: 'warn' },
      'test',
    );
    expect(config.server).toMatchObject({ port: 7777, host: '127.0.0.1' });
    expect(config.redis).toEqual({ url: 'redis://127.0.0.1:6379' });
    expect(config.log.level).toBe('warn');
  });

  it('lists every problem with its path, not just the first', () => {
    const problems = problemsOf(() =>
      parseConfig(
        {
          server: { port: 'eighty', bodyLimit: 'huge', extra: true },
          backends: {
            a: { type: 'openai', baseUrl: 'not a url' },
            b: { type: 'azure', baseUrl: 'https://x.openai.azure.com' },
            c: { type: 'carrier-pigeon' },
          },
          models: { m1: { backend: 'nope' }, 'bad*wild': { backend: 'a' } },
        },
        { PORT: 'abc' },
        'test',
      ),
    );
    const text = problems.join('\n');
    expect(text).toMatch(/^PORT: /m);
    expect(text).toMatch(/^server\.bodyLimit: /m);
    expect(text).toMatch(/^server: .*extra/m);
    expect(text).toMatch(/^backends\.a\.baseUrl: /m);
    expect(text).toMatch(/^backends\.b\.apiKey: /m);
    expect(text).toMatch(/^backends\.c\.type: /m);
    expect(text).toMatch(/^models\.m1\.backend: unknown backend 'nope'/m);
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it('names a missing environment variable and where it is used', () => {
    const problems = problemsOf(() =>
      parseConfig({ backends: { up: { type: 'openai', apiKey: '${MISSING_KEY}' } }, models: {} }, {}, 'test'),
    );
    expect(problems).toContain('backends.up.apiKey: environment variable MISSING_KEY is not set');
  });

  it('reports an unreadable or unparsable file clearly', () => {
    expect(problemsOf(() => loadConfig({ path: '/nonexistent/tollgate.yaml', env: {} }))[0]).toMatch(
      /cannot read/,
    );
    expect(
      problemsOf(() => loadConfig({ path: file('bad.yaml', 'backends: [unclosed'), env: {} }))[0],
    ).toMatch(/not valid YAML/);
    expect(problemsOf(() => loadConfig({ path: file('list.yaml', '- a\n- b\n'), env: {} }))[0]).toMatch(
      /mapping/,
    );
  });

  it('returns a frozen config', () => {
    const config = loadConfig({ env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.server)).toBe(true);
  });

  it('ships an example that is a valid config as shipped, with no environment at all', () => {
    const example = new URL('../tollgate.example.yaml', import.meta.url).pathname;
    const config = loadConfig({ path: example, env: {} });
    expect(Object.keys(config.backends).sort()).toEqual(['mock', 'ollama', 'openai']);
    expect(config.backends.openai).toMatchObject({ type: 'openai', apiKey: undefined });
    // With a key set, it is used.
    const keyed = loadConfig({ path: example, env: { OPENAI_API_KEY: 'sk-example' } });
    expect(keyed.backends.openai).toMatchObject({ apiKey: 'sk-example' });
  });

  it('ships a valid config for docker compose, also without an OpenAI key', () => {
    const path = new URL('../docker/tollgate.yaml', import.meta.url).pathname;
    const config = loadConfig({ path, env: { REDIS_URL: 'redis://redis:6379' } });
    expect(config.redis).toEqual({ url: 'redis://redis:6379' });
    expect(config.backends.openai).toMatchObject({
      type: 'openai',
      apiKey: undefined,
      baseUrl: 'https://api.openai.com/v1',
    });
  });
});
