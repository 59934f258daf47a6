import { z } from 'zod';
import { parseByteSize } from './byte-size.js';

const byteSize = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a byte size such as 20mb or 1048576, got ${value}` });
    return z.NEVER;
  }
  return bytes;
});

const positiveMs = z.number().int().positive();

const timeoutsSchema = z
  .object({
    /** TCP + TLS connect. */
    connectMs: positiveMs.default(10_000),
    /** From sending the request to the upstream's response headers (time to first byte). */
    firstByteMs: positiveMs.default(120_000),
    /** Longest silence allowed between two body chunks of a streamed response. */
    idleMs: positiveMs.default(120_000),
    /** The whole upstream exchange, streams included. */
    totalMs: positiveMs.default(600_000),
  })
  .strict()
  .prefault({});

const poolSchema = z
  .object({
    connections: z.number().int().positive().default(128),
    keepAliveTimeoutMs: positiveMs.default(30_000),
  })
  .strict()
  .prefault({});

const headersSchema = z.record(z.string(), z.string()).default({});

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http(s) URL' })
  .refine((url) => !url.includes('?') && !url.includes('#'), 'a base URL takes no query or fragment');

const openaiBackendSchema = z
  .object({
    type: z.literal('openai'),
    baseUrl: httpUrl.default('https://api.openai.com/v1'),
    // Empty means none: local servers (Ollama, vLLM) need no key, and `${KEY:-}` yields ''.
    apiKey: z
      .string()
      .optional()
      .transform((key) => key || undefined),
    organization: z.string().optional(),
    project: z.string().optional(),
    headers: headersSchema,
    timeouts: timeoutsSchema,
    pool: poolSchema,
  })
  .strict();

const azureBackendSchema = z
  .object({
    type: z.literal('azure'),
    /** The resource endpoint, e.g. https://my-resource.openai.azure.com */
    baseUrl: httpUrl,
    apiKey: z
      .string()
      .min(1, 'Azure OpenAI needs its API key: set it from the environment (see tollgate.example.yaml)'),
    apiVersion: z.string().min(1).default('2024-10-21'),
    headers: headersSchema,
    timeouts: timeoutsSchema,
    pool: poolSchema,
  })
  .strict();

const mockBackendSchema = z
  .object({
    type: z.literal('mock'),
    /** How many content chunks a streamed reply is cut into. */
    chunks: z.number().int().positive().max(10_000).default(4),
    /** Delay between streamed chunks. */
    chunkDelayMs: z.number().int().nonnegative().default(0),
    /** Delay before the reply starts (time to first byte). */
    latencyMs: z.number().int().nonnegative().default(0),
    /** Embedding length when the request does not say `dimensions`. */
    embeddingDimensions: z.number().int().positive().max(8192).default(16),
  })
  .strict();

export const backendSchema = z.discriminatedUnion('type', [
  openaiBackendSchema,
  azureBackendSchema,
  mockBackendSchema,
]);

/** Who may read a cached answer: the team that asked (default), only the same key, or everyone. */
export const cacheScopes = ['team', 'key', 'global'] as const;

/** ③ cache policy; each field set at a more specific level (model < team < key) wins. */
const cachePolicySchema = z
  .object({
    enabled: z.boolean().optional(),
    /** Seconds an answer is kept. */
    ttl: z.number().int().positive().optional(),
    /** Requests sampled above this temperature (and without a `seed`) are not cached. */
    maxTemperature: z.number().min(0).max(2).optional(),
    scope: z.enum(cacheScopes).optional(),
  })
  .strict();

const modelSchema = z
  .object({
    backend: z.string().min(1),
    /** Upstream model name (for azure: the deployment). Defaults to the public name. */
    model: z.string().min(1).optional(),
    ownedBy: z.string().optional(),
    cache: cachePolicySchema.optional(),
  })
  .strict();

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65_535).default(8080),
        /** JSON bodies; sized for base64 images in chat. */
        bodyLimit: byteSize.default(20 * 1024 ** 2),
        /** Multipart / binary uploads (audio), streamed through and counted. */
        uploadLimit: byteSize.default(25 * 1024 ** 2),
        /** SSE comment sent when a stream has been silent this long. */
        keepAliveIntervalMs: positiveMs.default(15_000),
        /** On SIGTERM/SIGINT, how long in-flight requests get to finish. */
        shutdownGraceMs: positiveMs.default(30_000),
        /**
         * Whom to believe about the client's address (X-Forwarded-For): false, true (anyone), or
         * addresses/CIDRs of your proxies. Rate limits per IP depend on it.
         */
        trustProxy: z.union([z.boolean(), z.string().min(1), z.array(z.string().min(1))]).default(false),
        cors: z
          .object({
            origins: z.union([z.literal('*'), z.array(z.string().min(1))]).default('*'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: logLevel.default('info'), pretty: z.boolean().default(false) })
      .strict()
      .prefault({}),
    /** Shared state for several instances; without it the gateway keeps state in memory. */
    redis: z
      .union([
        z.object({ url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL') }).strict(),
        z
          .object({
            cluster: z
              .object({ nodes: z.array(z.string().min(1)).min(1), password: z.string().optional() })
              .strict(),
          })
          .strict(),
        z
          .object({
            sentinel: z
              .object({
                name: z.string().min(1),
                sentinels: z.array(z.string().min(1)).min(1),
                password: z.string().optional(),
                db: z.number().int().nonnegative().optional(),
              })
              .strict(),
          })
          .strict(),
      ])
      .optional(),
    /** Where the embedded store keeps teams and keys (no Redis). */
    dataDir: z.string().min(1).default('./data'),
    /** `none` turns key checks off (a warning at boot); otherwise team keys are required on /v1. */
    auth: z
      .union([
        z.literal('none'),
        z
          .object({
            /** How long a validated key is trusted before asking the store again: the revocation lag. */
            cacheTtlMs: z.number().int().min(0).max(1_000).default(1_000),
            /** While the store is unreachable, keys validated this recently keep working. */
            staleOkSeconds: z.number().int().min(0).max(3_600).default(60),
            cacheSize: z.number().int().positive().default(10_000),
            /** Failed authentications allowed per client IP and window before 429s. */
            failedAttempts: z
              .object({
                max: z.number().int().positive().default(20),
                windowSeconds: z.number().int().positive().default(60),
              })
              .strict()
              .prefault({}),
          })
          .strict(),
      ])
      .prefault({}),
    /** Token and budget accounting (limits themselves are set per team and key, in the admin API). */
    quota: z
      .object({
        /** Calendar days and months of budgets are counted in this IANA time zone. */
        timeZone: z
          .string()
          .min(1)
          .default('UTC')
          .refine((zone) => {
            try {
              new Intl.DateTimeFormat('en-CA', { timeZone: zone });
              return true;
            } catch {
              return false;
            }
          }, 'expected an IANA time zone such as UTC or Europe/Paris'),
        /** Output tokens reserved for a request that sets no max_tokens. */
        defaultMaxOutputTokens: z.number().int().positive().default(4_096),
        /** A reservation a lost process never settles stops counting after this long. */
        reservationTtlMs: z.number().int().positive().default(600_000),
        /** USD per 1M tokens by upstream model name; extends and overrides the built-in table. */
        prices: z
          .record(
            z.string().min(1),
            z
              .object({
                input: z.number().nonnegative(),
                cachedInput: z.number().nonnegative().optional(),
                output: z.number().nonnegative(),
              })
              .strict(),
          )
          .default({}),
      })
      .strict()
      .prefault({}),
    /** ③ response cache: the defaults, overridden per model here and per team / key in the admin API. */
    cache: z
      .object({
        /** Off unless a model, team, key or the request (`x-tollgate-cache: on`) turns it on. */
        enabled: z.boolean().default(false),
        ttl: z.number().int().positive().default(3_600),
        maxTemperature: z.number().min(0).max(2).default(0),
        scope: z.enum(cacheScopes).default('team'),
        /** The longest `x-tollgate-cache-ttl` a request may ask for, in seconds. */
        maxTtl: z
          .number()
          .int()
          .positive()
          .default(7 * 86_400),
        /** Answers larger than this are not stored. */
        maxEntryBytes: byteSize.default(1024 ** 2),
        /** The embedded store's cache size (least recently used entries go first). */
        memoryMaxBytes: byteSize.default(64 * 1024 ** 2),
        /** true: a hit spends tokens and budget as if the upstream had answered. */
        hitsSpendBudget: z.boolean().default(false),
        /** Identical requests in flight wait for the first instead of going upstream themselves. */
        coalesce: z
          .object({
            enabled: z.boolean().default(true),
            /** After this long a waiting request goes upstream itself. */
            waitMs: positiveMs.default(30_000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    admin: z
      .object({
        /** The admin API's key; if none is configured, the first start generates one. */
        key: z.string().min(16, 'use at least 16 characters').optional(),
        /** Failed admin authentications allowed per client IP and window before 429s (counted apart from /v1's). */
        failedAttempts: z
          .object({
            max: z.number().int().positive().default(20),
            windowSeconds: z.number().int().positive().default(60),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    readiness: z
      .object({
        /** false: ready while at least one backend answers; true: every backend must. */
        requireAllBackends: z.boolean().default(false),
        cacheMs: z.number().int().nonnegative().default(5_000),
        timeoutMs: positiveMs.default(2_000),
      })
      .strict()
      .prefault({}),
    backends: z.record(z.string().min(1), backendSchema),
    /**
     * Public model name -> backend. `*` sends any other name to a backend unchanged;
     * `prefix/*` sends `prefix/<name>` to a backend as `<name>`.
     */
    models: z.record(z.string().min(1), modelSchema),
  })
  .strict()
  .strict();

/**
 * Problems between sections (a model naming an undeclared backend, a malformed wildcard).
 * Checked on the raw document, apart from the schema, so they are listed even when other
 * parts of the file are invalid too.
 */
export function crossReferenceProblems(raw: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const backends = raw.backends !== null && typeof raw.backends === 'object' ? Object.keys(raw.backends) : [];
  const models = raw.models !== null && typeof raw.models === 'object' ? Object.entries(raw.models) : [];
  for (const [name, model] of models) {
    const backend = (model as { backend?: unknown } | null)?.backend;
    if (typeof backend === 'string' && !backends.includes(backend)) {
      problems.push(
        `models.${name}.backend: unknown backend '${backend}' (declared: ${backends.join(', ') || 'none'})`,
      );
    }
    if (name.includes('*') && name !== '*' && !/^[^*]+\/\*$/.test(name)) {
      problems.push(`models.${name}: wildcards are '*' or 'prefix/*'`);
    }
    if (name.includes('*') && (model as { model?: unknown } | null)?.model !== undefined) {
      problems.push(
        `models.${name}.model: a wildcard route sends each name through as asked; it takes no model`,
      );
    }
  }
  return problems;
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type BackendConfig = z.output<typeof backendSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type CacheConfig = z.output<typeof configSchema>['cache'];
export type CachePolicyConfig = z.output<typeof cachePolicySchema>;
export type TimeoutsConfig = z.output<typeof timeoutsSchema>;
