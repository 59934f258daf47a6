import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Document, isPair, isScalar, parseDocument, visit, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { configIssueMessage } from './config-issue-message.js';
import { interpolate } from './interpolate.js';
import { moduleFileProblems } from './module-files.js';
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

/** Config paths the embedded defaults take from the environment, by the variable's name. */
function defaultSources(env: NodeJS.ProcessEnv): Record<string, string> {
  if (!env.OPENAI_API_KEY) return {};
  return {
    'backends.openai.apiKey': 'OPENAI_API_KEY',
    ...(env.OPENAI_BASE_URL ? { 'backends.openai.baseUrl': 'OPENAI_BASE_URL' } : {}),
  };
}

/**
 * The environment's settings over the document's. Returns which config path each variable set,
 * so that a problem with its value names the variable: the path alone is not in the file.
 */
function applyEnvOverrides(
  input: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  problems: string[],
): Record<string, string> {
  const sources: Record<string, string> = {};
  const set = (section: string, key: string, value: unknown, variable: string) => {
    input[section] = { ...asRecord(input[section]), [key]: value };
    sources[`${section}.${key}`] = variable;
  };
  if (env.PORT !== undefined && env.PORT !== '') {
    const port = Number(env.PORT);
    if (Number.isInteger(port) && port >= 0 && port <= 65_535) set('server', 'port', port, 'PORT');
    else problems.push(`PORT: expected a port number, got '${env.PORT}'`);
  }
  if (env.HOST) set('server', 'host', env.HOST, 'HOST');
  if (env.LOG_LEVEL) set('log', 'level', env.LOG_LEVEL, 'LOG_LEVEL');
  if (env.LOG_PRETTY === '1' || env.LOG_PRETTY === 'true') set('log', 'pretty', true, 'LOG_PRETTY');
  if (env.LOG_REQUESTS) set('log', 'requests', env.LOG_REQUESTS, 'LOG_REQUESTS');
  if (env.REDIS_URL) {
    input.redis = { url: env.REDIS_URL };
    sources['redis.url'] = 'REDIS_URL';
  }
  if (env.TOLLGATE_DATA_DIR) {
    input.dataDir = env.TOLLGATE_DATA_DIR;
    sources.dataDir = 'TOLLGATE_DATA_DIR';
  }
  if (env.TOLLGATE_AUTH === 'none') input.auth = 'none';
  else if (env.TOLLGATE_AUTH)
    problems.push(`TOLLGATE_AUTH: the only accepted value is 'none', got '${env.TOLLGATE_AUTH}'`);
  if (env.TOLLGATE_ADMIN_KEY) set('admin', 'key', env.TOLLGATE_ADMIN_KEY, 'TOLLGATE_ADMIN_KEY');
  return sources;
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${path || '(root)'}: ${issue.message}`;
  });
}

/** `path: message` as `VARIABLE (path): message` when an environment variable set that path. */
function namingVariables(problem: string, sources: Record<string, string>): string {
  const path = problem.slice(0, problem.indexOf(': '));
  for (const [source, variable] of Object.entries(sources)) {
    if (path === source || path.startsWith(`${source}.`))
      return `${variable} (${path})${problem.slice(path.length)}`;
  }
  return problem;
}

interface ParseConfigOptions {
  /** Where relative paths in it resolve (the file's folder; the working directory without one). */
  configDir?: string | undefined;
  /** Config paths already taken from the environment, by variable (the embedded defaults'). */
  sources?: Record<string, string>;
  /** Whether module files named by path must exist (at boot, not for a test's config). */
  checkFiles?: boolean;
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
  return parseConfigWith(raw, env, source, { configDir });
}

function parseConfigWith(
  raw: unknown,
  env: NodeJS.ProcessEnv,
  source: string,
  options: ParseConfigOptions,
): Config {
  const configDir = options.configDir ?? process.cwd();
  const problems: string[] = [];
  const interpolated = asRecord(interpolate(raw as Json, configSchema, env, problems));
  const sources = { ...options.sources, ...applyEnvOverrides(interpolated, env, problems) };
  // A value left empty by an unset variable is reported once, as that, not again by the schema.
  const unset = new Set(problems.map((problem) => problem.slice(0, problem.indexOf(': '))));
  const result = configSchema.safeParse(interpolated, { error: configIssueMessage });
  if (!result.success)
    problems.push(
      ...formatIssues(result.error).filter((problem) => !unset.has(problem.slice(0, problem.indexOf(': ')))),
    );
  problems.push(...crossReferenceProblems(interpolated));
  if (options.checkFiles) problems.push(...moduleFileProblems(interpolated, configDir));
  if (problems.length > 0 || !result.success)
    throw new ConfigError(
      source,
      problems.map((problem) => namingVariables(problem, sources)),
    );
  return deepFreeze({ ...result.data, configDir, fromEnvironment: sources });
}

/** A YAML problem in our words: a repeated key is named, with where it is. */
function yamlProblem(document: Document, error: YAMLError): string {
  const at = error.linePos?.[0];
  const where = at ? ` (line ${at.line}, column ${at.col})` : '';
  if (error.code === 'DUPLICATE_KEY') {
    let found: string | undefined;
    visit(document, {
      Pair(_key, pair, ancestors) {
        if (!isScalar(pair.key) || pair.key.range?.[0] !== error.pos[0]) return undefined;
        const outer = ancestors
          .filter(isPair)
          .map((outerPair) => String(isScalar(outerPair.key) ? outerPair.key.value : '?'));
        found = `${outer.length > 0 ? `${outer.join('.')}: ` : ''}the key '${String(pair.key.value)}' appears twice in one mapping${where}`;
        return visit.BREAK;
      },
    });
    if (found) return `not valid YAML/JSON: ${found}`;
  }
  // yaml's message ends "at line 5, column 3:" and then quotes the lines around it.
  const first = (error.message.split('\n')[0] ?? '').replace(/:$/, '');
  return `not valid YAML/JSON: ${first}`;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env.TOLLGATE_CONFIG;
  if (!path)
    return parseConfigWith(defaultConfigInput(env), env, 'embedded defaults', {
      sources: defaultSources(env),
      checkFiles: true,
    });
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [
      `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    ]);
  }
  // YAML is a superset of JSON, so one parser reads both.
  const document = parseDocument(text);
  if (document.errors.length > 0)
    throw new ConfigError(
      path,
      document.errors.map((error) => yamlProblem(document, error)),
    );
  let raw: unknown;
  try {
    raw = document.toJS();
  } catch (error) {
    throw new ConfigError(path, [`not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(path, ['(root): expected a mapping with backends and models']);
  }
  return parseConfigWith(raw, env, path, { configDir: dirname(resolve(path)), checkFiles: true });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
