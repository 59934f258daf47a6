import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configIssueMessage } from './config-issue-message.js';
import { type Config, type ConfigInput, configSchema, crossReferenceProblems } from './schema.js';

/** Thrown at boot with every problem found, each prefixed by its path in the config. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`Invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** Path from --config; falls back to TOLLGATE_CONFIG. */
  path?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${VAR}` / `${VAR:-default}` in string values. Done on the parsed tree, not the raw
 * text, so a secret containing YAML syntax cannot change the document's structure.
 */
function interpolate(value: Json, env: NodeJS.ProcessEnv, path: string, problems: string[]): Json {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_whole, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push(`${path || '(root)'}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, env, `${path}[${i}]`, problems));
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = interpolate(item, env, path ? `${path}.${key}` : key, problems);
    }
    return out;
  }
  return value;
}

/** No config file: a drop-in proxy. `mock` always; an OpenAI upstream when OPENAI_API_KEY is set. */
export function defaultConfigInput(env: NodeJS.ProcessEnv): ConfigInput {
  const input: ConfigInput = {
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
  };
  if (env.OPENAI_API_KEY) {
    input.backends.openai = {
      type: 'openai',
      apiKey: env.OPENAI_API_KEY,
      ...(env.OPENAI_BASE_URL ? { baseUrl: env.OPENAI_BASE_URL } : {}),
    };
    input.models['*'] = { backend: 'openai' };
  }
  return input;
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function applyEnvOverrides(input: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  const server = asRecord(input.server);
  if (env.PORT !== undefined && env.PORT !== '') {
    const port = Number(env.PORT);
    if (Number.isInteger(port) && port >= 0 && port <= 65_535) server.port = port;
    else problems.push(`PORT: expected a port number, got '${env.PORT}'`);
  }
  if (env.HOST) server.host = env.HOST;
  input.server = server;
  if (env.LOG_LEVEL) input.log = { ...asRecord(input.log), level: env.LOG_LEVEL };
  if (env.LOG_PRETTY === '1' || env.LOG_PRETTY === 'true')
    input.log = { ...asRecord(input.log), pretty: true };
  if (env.LOG_REQUESTS) input.log = { ...asRecord(input.log), requests: env.LOG_REQUESTS };
  if (env.REDIS_URL) input.redis = { url: env.REDIS_URL };
  if (env.TOLLGATE_DATA_DIR) input.dataDir = env.TOLLGATE_DATA_DIR;
  if (env.TOLLGATE_AUTH === 'none') input.auth = 'none';
  else if (env.TOLLGATE_AUTH)
    problems.push(`TOLLGATE_AUTH: the only accepted value is 'none', got '${env.TOLLGATE_AUTH}'`);
  if (env.TOLLGATE_ADMIN_KEY) input.admin = { ...asRecord(input.admin), key: env.TOLLGATE_ADMIN_KEY };
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${path || '(root)'}: ${issue.message}`;
  });
}

/**
 * Parses a config document (already read) plus env into a frozen Config, or throws ConfigError.
 * `configDir`: where relative paths in it resolve (the file's folder; the working directory without one).
 */
export function parseConfig(
  raw: unknown,
  env: NodeJS.ProcessEnv,
  source: string,
  configDir: string = process.cwd(),
): Config {
  const problems: string[] = [];
  const interpolated = asRecord(interpolate(raw as Json, env, '', problems));
  applyEnvOverrides(interpolated, env, problems);
  // A value left empty by an unset variable is reported once, as that, not again by the schema.
  const unset = new Set(problems.map((problem) => problem.slice(0, problem.indexOf(': '))));
  const result = configSchema.safeParse(interpolated, { error: configIssueMessage });
  if (!result.success)
    problems.push(
      ...formatIssues(result.error).filter((problem) => !unset.has(problem.slice(0, problem.indexOf(': ')))),
    );
  problems.push(...crossReferenceProblems(interpolated));
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  return deepFreeze({ ...result.data, configDir });
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env.TOLLGATE_CONFIG;
  if (!path) return parseConfig(defaultConfigInput(env), env, 'embedded defaults');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [
      `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    ]);
  }
  let raw: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both.
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(path, [`not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(path, ['(root): expected a mapping with backends and models']);
  }
  return parseConfig(raw, env, path, dirname(resolve(path)));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
