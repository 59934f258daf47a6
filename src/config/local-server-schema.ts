import { z } from 'zod';
import type { BackendConfig } from './schema.js';

/** Backend types that are presets over the OpenAI-compatible adapter for a model server you run. */
export const LOCAL_SERVER_TYPES = ['ollama', 'vllm', 'llamacpp-server', 'lmstudio'] as const;
export type LocalServerType = (typeof LOCAL_SERVER_TYPES)[number];

/** Where each server listens when started with its defaults. */
export const LOCAL_SERVER_BASE_URLS: Readonly<Record<LocalServerType, string>> = {
  ollama: 'http://127.0.0.1:11434/v1',
  vllm: 'http://127.0.0.1:8000/v1',
  'llamacpp-server': 'http://127.0.0.1:8080/v1',
  lmstudio: 'http://127.0.0.1:1234/v1',
};

/**
 * The parts every HTTP backend shares, defined once in schema.ts. Passed in rather than imported:
 * schema.ts imports this file, and a value import back would read them before they exist.
 */
export interface SharedBackendSchemas<Headers, Timeouts, Pool> {
  httpUrl: z.ZodType<string, string>;
  headers: Headers;
  timeouts: Timeouts;
  pool: Pool;
}

const positiveMs = z.number().int().positive();
/** A day at most: timers cannot wait longer than about 24.8 days. */
const probeIntervalMs = positiveMs.max(86_400_000);

/**
 * What the server can do, when it differs from the preset's defaults (see
 * src/backends/local-servers/local-server-presets.ts). Unset fields keep the preset's value.
 */
const capabilitiesSchema = z
  .object({
    /** It serves /v1/responses itself; false: the gateway translates such requests to chat. */
    responses: z.boolean().optional(),
    /** It serves /v1/embeddings; false: embeddings requests get a 400 naming the model. */
    embeddings: z.boolean().optional(),
    /** It accepts `tools`; false: a request with tools gets a 400 before it is sent. */
    tools: z.boolean().optional(),
    /** It sends a usage chunk on streams; false: the gateway counts the output, marked estimated. */
    streamUsage: z.boolean().optional(),
  })
  .strict()
  .prefault({});

const discoverySchema = z
  .object({
    /** How often the server's model list is read again while it answers. */
    refreshMs: probeIntervalMs.default(30_000),
    /** How often a server found down is probed again; routing skips it until one finds it up. */
    retryMs: probeIntervalMs.default(5_000),
    /** One probe (model list) may take this long before the server counts as down. */
    timeoutMs: positiveMs.max(600_000).default(5_000),
  })
  .strict()
  .prefault({});

function localServerSchema<
  T extends LocalServerType,
  Headers extends z.ZodType,
  Timeouts extends z.ZodType,
  Pool extends z.ZodType,
>(type: T, shared: SharedBackendSchemas<Headers, Timeouts, Pool>) {
  return z
    .object({
      type: z.literal(type),
      baseUrl: shared.httpUrl.default(LOCAL_SERVER_BASE_URLS[type]),
      // Local servers take no key by default; one behind an authenticating proxy (or vLLM's
      // --api-key) may. Empty means none, as `${KEY:-}` yields ''.
      apiKey: z
        .string()
        .optional()
        .transform((key) => key || undefined),
      headers: shared.headers,
      timeouts: shared.timeouts,
      pool: shared.pool,
      discovery: discoverySchema,
      capabilities: capabilitiesSchema,
    })
    .strict();
}

/** The four preset schemas, as members of the backends' discriminated union. */
export function localServerBackendSchemas<
  Headers extends z.ZodType,
  Timeouts extends z.ZodType,
  Pool extends z.ZodType,
>(shared: SharedBackendSchemas<Headers, Timeouts, Pool>) {
  return [
    localServerSchema('ollama', shared),
    localServerSchema('vllm', shared),
    localServerSchema('llamacpp-server', shared),
    localServerSchema('lmstudio', shared),
  ] as const;
}

export type LocalServerConfig = Extract<BackendConfig, { type: LocalServerType }>;
export type LocalServerCapabilities = z.output<typeof capabilitiesSchema>;

export function isLocalServerType(type: string): type is LocalServerType {
  return (LOCAL_SERVER_TYPES as readonly string[]).includes(type);
}
