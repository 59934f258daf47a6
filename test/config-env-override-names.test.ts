import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load-config.js';

/**
 * A problem with a value an environment variable gave names the variable, not only a config
 * path the file does not have.
 */
function problemsOf(path: string | undefined, env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ path, env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tollgate-env-names-')), 'tollgate.yaml');
  writeFileSync(path, text);
  return path;
}

const BASE = 'backends:\n  mock: {type: mock}\nmodels:\n  mock: {backend: mock}\n';

describe('problems with values from environment variables', () => {
  it('name the variable and the setting it stands for', () => {
    const problems = problemsOf(configFile(BASE), {
      LOG_LEVEL: 'loud',
      LOG_REQUESTS: 'some',
      REDIS_URL: 'foo',
      TOLLGATE_ADMIN_KEY: 'short',
      HOST: '',
    });
    expect(problems).toEqual([
      "LOG_LEVEL (log.level): expected one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent', got 'loud'",
      "LOG_REQUESTS (log.requests): expected one of 'all', 'errors', 'none', got 'some'",
      'REDIS_URL (redis.url): expected a redis:// or rediss:// URL',
      'TOLLGATE_ADMIN_KEY (admin.key): use at least 16 characters',
    ]);
  });

  it('the same setting in the file is named by its path alone', () => {
    const problems = problemsOf(configFile(`${BASE}log: {level: loud}\nredis: {url: foo}\n`), {});
    expect(problems).toEqual([
      "log.level: expected one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent', got 'loud'",
      'redis.url: expected a redis:// or rediss:// URL',
    ]);
  });

  it('with no file, OPENAI_BASE_URL is named for the embedded openai backend', () => {
    expect(problemsOf(undefined, { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'localhost:11434/v1' })).toEqual([
      'OPENAI_BASE_URL (backends.openai.baseUrl): expected an http(s) URL',
    ]);
  });

  it('TOLLGATE_DATA_DIR is named for dataDir', () => {
    expect(problemsOf(configFile(BASE), { TOLLGATE_DATA_DIR: 'x', REDIS_URL: 'redis://h:1/x' })).toEqual([
      'REDIS_URL (redis.url): has a database (the part after the host) that is not a whole number: expected one such as /0, or none for 0',
    ]);
    const config = loadConfig({ path: configFile(BASE), env: { TOLLGATE_DATA_DIR: '/srv/tollgate' } });
    expect(config.fromEnvironment).toEqual({ dataDir: 'TOLLGATE_DATA_DIR' });
  });
});
