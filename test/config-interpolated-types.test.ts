import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load-config.js';

/**
 * `${VAR}` and `${VAR:-default}` yield text; where the config takes a number or true/false, a
 * clean one is used as such. Where it takes text (an API key of digits), text stays text.
 */
const base = { backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } };

function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, env, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('values from the environment where a number or true/false is expected', () => {
  it('defaults and variables become numbers and booleans', () => {
    const config = parseConfig(
      {
        ...base,
        server: {
          shutdownGraceMs: '${GRACE_MS:-25000}',
          port: '${P:-8080}',
          workers: '${WORKERS:-1}',
          bodyLimit: '${BODY:-2048}',
        },
        readiness: { requireAllBackends: '${ALL:-false}', cacheMs: '${CACHE_MS}' },
        cache: { enabled: '${CACHE_ON}', maxTemperature: '${TEMP:-0.5}' },
      },
      { CACHE_MS: '750', CACHE_ON: 'true' },
      'test',
    );
    expect(config.server.shutdownGraceMs).toBe(25_000);
    expect(config.server.port).toBe(8080);
    expect(config.server.workers).toBe(1);
    expect(config.server.bodyLimit).toBe(2048);
    expect(config.readiness.requireAllBackends).toBe(false);
    expect(config.readiness.cacheMs).toBe(750);
    expect(config.cache.enabled).toBe(true);
    expect(config.cache.maxTemperature).toBe(0.5);
  });

  it('a value that also takes a word keeps the word: workers auto, trustProxy true', () => {
    const config = parseConfig(
      {
        ...base,
        server: { workers: '${W:-auto}', trustProxy: '${TRUST:-true}' },
        redis: { url: 'redis://x:1' },
      },
      {},
      'test',
    );
    expect(config.server.workers).toBeGreaterThanOrEqual(1);
    expect(config.server.trustProxy).toBe(true);
  });

  it('text stays text: an API key of digits, a header, a module option', () => {
    const config = parseConfig(
      {
        backends: {
          up: { type: 'openai', apiKey: '${KEY}', headers: { 'x-n': '${N:-42}' } },
          mine: { type: 'module', module: 'some-package', options: { retries: '${R:-3}' } },
        },
        models: { m: { backend: 'up' } },
      },
      { KEY: '1234567890' },
      'test',
    );
    expect(config.backends.up).toMatchObject({ apiKey: '1234567890', headers: { 'x-n': '42' } });
    expect(config.backends.mine).toMatchObject({ options: { retries: '3' } });
  });

  it('a backend option is typed by its own backend type', () => {
    const config = parseConfig(
      { backends: { m: { type: 'mock', chunks: '${CHUNKS:-2}' } }, models: { x: { backend: 'm' } } },
      {},
      'test',
    );
    expect(config.backends.m).toMatchObject({ chunks: 2 });
  });

  it('text that is not a clean number or true/false is still refused where a number is expected', () => {
    expect(problemsOf({ ...base, server: { port: '${P:-80a}' } })).toEqual([
      'server.port: expected a number, got text',
    ]);
    expect(problemsOf({ ...base, readiness: { requireAllBackends: '${X:-yes}' } })).toEqual([
      'readiness.requireAllBackends: expected true or false, got text',
    ]);
  });

  it('a number written as text in the file itself stays a mistake', () => {
    expect(problemsOf({ ...base, server: { port: '8080' } })).toEqual([
      'server.port: expected a number, got text',
    ]);
  });
});

describe('an unset variable', () => {
  it('inside a list is reported once, in the path style of every other problem', () => {
    expect(problemsOf({ ...base, server: { cors: { origins: ['${ORIGIN}'] } } })).toEqual([
      'server.cors.origins.0: environment variable ORIGIN is not set',
    ]);
  });
});
