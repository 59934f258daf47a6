import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { z } from 'zod';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { configSchema } from '../src/config/schema.js';
import { startGatewayProcess } from './support/gateway-process.js';

/**
 * The shipped example boots as it is, with no credentials in the environment, and documents
 * every option; a bad config is explained in the gateway's words, never zod's defaults.
 */
const EXAMPLE = fileURLToPath(new URL('../tollgate.example.yaml', import.meta.url));

afterEach(() => {
  vi.unstubAllEnvs();
});

/** Every option name the schema accepts (object keys, through defaults, unions and records). */
function optionNames(schema: z.core.$ZodType, into = new Set<string>()): Set<string> {
  const def = schema._zod.def as unknown as {
    type: string;
    shape?: Record<string, z.core.$ZodType>;
    innerType?: z.core.$ZodType;
    options?: z.core.$ZodType[];
    valueType?: z.core.$ZodType;
    element?: z.core.$ZodType;
    in?: z.core.$ZodType;
  };
  if (def.shape)
    for (const [name, child] of Object.entries(def.shape)) {
      into.add(name);
      optionNames(child, into);
    }
  for (const child of [def.innerType, def.valueType, def.element, def.in, ...(def.options ?? [])])
    if (child) optionNames(child, into);
  return into;
}

const ZOD_WORDING =
  /Too small|Too big|expected string to have|Invalid input|Invalid option|Unrecognized key|Invalid discriminator|received/;

function problemsOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(raw, env, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const base = { backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } };

describe('the shipped example config', () => {
  it('boots a real gateway process as shipped, with no credentials in the environment', async () => {
    // Whatever the developer's shell has: the example must not need it.
    vi.stubEnv('AZURE_OPENAI_API_KEY', undefined);
    vi.stubEnv('REDIS_PASSWORD', undefined);
    const gateway = await startGatewayProcess({ TOLLGATE_CONFIG: EXAMPLE });
    try {
      expect(gateway.output()).not.toContain('Invalid configuration');
      const health = await fetch(`${gateway.url}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await gateway.stop();
    }
  });

  it('mentions every option the config accepts (set or commented out)', () => {
    const text = readFileSync(EXAMPLE, 'utf8');
    const missing = [...optionNames(configSchema)].filter(
      (name) => !new RegExp(`(^|[\\s{,#])${name}:`, 'm').test(text),
    );
    expect(missing).toEqual([]);
  });
});

describe('config problems in the gateway’s own words', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['no backends or models', {}, /^backends: is required: expected a mapping/],
    [
      'an azure backend with an empty key',
      {
        ...base,
        backends: { az: { type: 'azure', baseUrl: 'https://x.openai.azure.com', apiKey: '' } },
        models: { m: { backend: 'az' } },
      },
      /^backends\.az\.apiKey: Azure OpenAI needs its API key/,
    ],
    [
      'an unknown backend type',
      { ...base, backends: { ...base.backends, x: { type: 'bedrock' } } },
      /^backends\.x\.type: expected one of 'openai', 'azure', 'mock', 'anthropic', 'llama-cpp', 'module', 'ollama', 'vllm', 'llamacpp-server', 'lmstudio', got 'bedrock'$/,
    ],
    ['a port as text', { ...base, server: { port: 'abc' } }, /^server\.port: expected a number, got text$/],
    ['a port too big', { ...base, server: { port: 70_000 } }, /^server\.port: must be at most 65535$/],
    [
      'a misspelt option',
      { ...base, server: { prot: 1 } },
      /^server: unknown option 'prot' \(the options here: host, port, /,
    ],
    [
      'a log level',
      { ...base, log: { level: 'loud' } },
      /^log\.level: expected one of 'fatal', .*got 'loud'$/,
    ],
    ['trustProxy', { ...base, server: { trustProxy: 5 } }, /^server\.trustProxy: expected true, false, /],
    ['redis of no known form', { ...base, redis: { host: 'x' } }, /^redis: expected one of \{url: /],
    ['auth of no known form', { ...base, auth: 'off' }, /^auth: expected 'none' or a mapping/],
    [
      'cors origins',
      { ...base, server: { cors: { origins: 'x' } } },
      /^server\.cors\.origins: expected '\*'/,
    ],
    [
      'models as a list',
      { ...base, models: [] },
      /^models: expected a mapping of names to settings, got a list$/,
    ],
    ['an empty dataDir', { ...base, dataDir: '' }, /^dataDir: must not be empty$/],
    ['a zero', { ...base, quota: { defaultMaxOutputTokens: 0 } }, /must be greater than 0$/],
    [
      'a fraction',
      { ...base, quota: { defaultMaxOutputTokens: 1.5 } },
      /expected a whole number, got a fraction$/,
    ],
    [
      'a missing price',
      { ...base, quota: { prices: { a: { input: 1 } } } },
      /^quota\.prices\.a\.output: is required/,
    ],
    [
      'a flag as text',
      { ...base, cache: { enabled: 'yes' } },
      /^cache\.enabled: expected true or false, got text$/,
    ],
    [
      'an empty list',
      { ...base, redis: { sentinel: { name: 'm', sentinels: [] } } },
      /needs at least 1 entry$/,
    ],
    [
      'an auth limit too high',
      { ...base, auth: { cacheTtlMs: 5_000 } },
      /^auth\.cacheTtlMs: must be at most 1000$/,
    ],
  ];
  it.each(cases)('%s', (_name, raw, expected) => {
    const problems = problemsOf(raw);
    expect(problems.some((problem) => expected.test(problem))).toBe(true);
    for (const problem of problems) expect(problem).not.toMatch(ZOD_WORDING);
  });

  it('a value left empty by an unset variable is reported once, as that', () => {
    const problems = problemsOf({
      ...base,
      backends: { az: { type: 'azure', baseUrl: 'https://x.openai.azure.com', apiKey: '${AZ_KEY}' } },
      models: { m: { backend: 'az' } },
    });
    expect(problems).toEqual(['backends.az.apiKey: environment variable AZ_KEY is not set']);
  });

  it('never echoes a value that may be a secret', () => {
    const problems = problemsOf({
      ...base,
      backends: { o: { type: 'openai', apiKey: 12345678901234, headers: { authorization: 987654321 } } },
      models: { m: { backend: 'o' } },
    });
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.join('\n')).not.toMatch(/12345678901234|987654321/);
  });
});
