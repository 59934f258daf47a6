import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { REQUEST_LINE_CHOICES } from '../http/request-log.js';
import { isObject } from '../json-values.js';
import { isKnownTimeZone } from '../quota/budget-day.js';
import { anthropicBackendSchema } from './anthropic-schema.js';
import { parseByteSize } from './byte-size.js';
import { llamaCppBackendSchema } from './llama-cpp-schema.js';
import { localServerBackendSchemas } from './local-server-schema.js';
import { moduleBackendSchema } from './module-backend-schema.js';
import { redisNodeProblem, redisUrlProblem } from './redis-address.js';
import { trustProxyProblems } from './trust-proxy.js';
import { poolSchema, timeoutsSchema } from './upstream-http-schema.js';

const byteSize = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    // Not echoed (see config-issue-message.ts): said what it takes instead.
    ctx.addIssue({
      code: 'custom',
      message:
        'expected a byte size such as 20mb or 1048576: a whole number of bytes, or a number with b, kb, mb or gb',
    });
    return z.NEVER;
  }
  return bytes;
});

const positiveMs = z.number().int().positive();

/** `schema` refined by a check that returns its problem in our words (or undefined). */
function checked(schema: z.ZodString, problemOf: (value: string) => string | undefined) {
  return schema.superRefine((value, ctx) => {
    const problem = problemOf(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });
}

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
    /**
     * Several keys instead of apiKey, used by weight: one the upstream refuses (401/403) is
     * taken out, one it rate-limits (429) rests for its retry-after.
     */
    apiKeys: z
      .array(z.object({ key: z.string().min(1), weight: z.number().positive().default(1) }).strict())
      .min(1)
      .optional(),
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
  anthropicBackendSchema,
  llamaCppBackendSchema,
  moduleBackendSchema,
  // ollama, vllm, llamacpp-server, lmstudio: presets over the OpenAI-compatible adapter.
  ...localServerBackendSchemas({
    httpUrl,
    headers: headersSchema,
    timeouts: timeoutsSchema,
    pool: poolSchema,
  }),
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

/** A deployment's own limits at its provider, counted across the fleet; one at a limit is skipped. */
const deploymentLimitsSchema = z
  .object({
    requestsPerMinute: z.number().int().positive().optional(),
    /** Estimated tokens (prompt + max output) per minute. */
    tokensPerMinute: z.number().int().positive().optional(),
    maxConcurrent: z.number().int().positive().optional(),
  })
  .strict();

/** One place a model is served: a backend and what that backend calls the model. */
const deploymentSchema = z
  .object({
    backend: z.string().min(1),
    /** Upstream model name (for azure: the deployment). Defaults to the public name. */
    model: z.string().min(1).optional(),
    /** Names it in x-tollgate-backend, logs and circuit state; defaults to the backend's name. */
    name: z.string().min(1).optional(),
    /** Share of traffic among the deployments the strategy weighs. */
    weight: z.number().positive().default(1),
    /** Tier for the `priority` strategy: 0 first; a later tier only when every earlier one is out. */
    priority: z.number().int().nonnegative().default(0),
    limits: deploymentLimitsSchema.prefault({}),
  })
  .strict();

/** How a model's deployments are ordered for a request (see src/routing/). */
export const routingStrategies = [
  'weighted',
  'priority',
  'least-in-flight',
  'lowest-latency',
  'lowest-cost',
] as const;

/** Retries before the first byte reaches the client; never after. */
const retrySchema = z
  .object({
    /** Attempts in all, the first included, over the deployments and then the fallbacks. */
    attempts: z.number().int().min(1).max(10).default(3),
    /** The first pause between attempts, doubled each time (with jitter) up to maxBackoffMs. */
    backoffMs: z.number().int().nonnegative().default(250),
    maxBackoffMs: z.number().int().nonnegative().default(5_000),
    /** An upstream's retry-after is honoured up to this; a longer one moves on instead of waiting. */
    maxRetryAfterMs: z.number().int().nonnegative().default(10_000),
    /** Every attempt of one request must have started answering within this. */
    deadlineMs: positiveMs.default(60_000),
    /**
     * Optional: an attempt not ready to answer within this (a stream's first event, a JSON answer
     * whole) is abandoned, its upstream request aborted, and the next candidate tried.
     */
    attemptTimeoutMs: positiveMs.optional(),
  })
  .strict();

/** Per deployment, shared by every instance through the store. */
const circuitSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Consecutive failures that open the circuit. */
    failures: z.number().int().positive().default(5),
    /** Or this share of failures within windowMs, once minRequests were seen there. */
    failureRatio: z.number().gt(0).max(1).default(0.5),
    minRequests: z.number().int().positive().default(20),
    windowMs: positiveMs.default(60_000),
    /** Open this long, then one probe request (across the fleet) decides: closed or open again. */
    cooldownMs: positiveMs.default(30_000),
  })
  .strict();

/**
 * A public model: one backend (`backend`, `model`), or several `deployments`. Which of the two,
 * and references to backends and other models, are checked in crossReferenceProblems. Routing
 * options left out stay out of the parsed config (a one-line model parses as it always did);
 * src/routing/route-table.ts applies their defaults.
 */
const modelSchema = z
  .object({
    backend: z.string().min(1).optional(),
    /** Upstream model name (for azure: the deployment). Defaults to the public name. */
    model: z.string().min(1).optional(),
    deployments: z.array(deploymentSchema).min(1).optional(),
    /** Default: weighted. */
    strategy: z.enum(routingStrategies).optional(),
    /** Models tried in order (each with its own deployments) once this one's are all out. */
    fallbacks: z.array(z.string().min(1)).optional(),
    /**
     * Models tried in order instead when the upstream answers 400 `context_length_exceeded`
     * (see src/routing/targeted-fallback.ts); that 400 is otherwise the client's answer.
     */
    contextFallbacks: z.array(z.string().min(1)).optional(),
    /** The same for a content-policy refusal (400 `content_policy_violation`, `content_filter`). */
    contentPolicyFallbacks: z.array(z.string().min(1)).optional(),
    retry: retrySchema.optional(),
    circuit: circuitSchema.optional(),
    ownedBy: z.string().optional(),
    cache: cachePolicySchema.optional(),
  })
  .strict();

/** Failed authentications allowed per client IP and window before 429s (/v1 and /admin count apart). */
const failedAttemptsSchema = z
  .object({
    max: z.number().int().positive().default(20),
    windowSeconds: z.number().int().positive().default(60),
  })
  .strict()
  .prefault({});

/** A typo (`workers: 800`) should not fork hundreds of gateways on one machine. */
const MAX_WORKERS = 256;

const workersSchema = z.union([z.literal('auto'), z.number().int().min(1).max(MAX_WORKERS)], {
  error: `expected 'auto' or a whole number from 1 to ${MAX_WORKERS}`,
});

/** `auto`: one worker per core this process may use. */
function workerCount(value: number | 'auto'): number {
  return value === 'auto' ? availableParallelism() : value;
}

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
         * How long a client has to send a whole request, headers and body (the answer's time does
         * not count); one slower gets a 408 and its connection closes. Without it a client holds a
         * connection (and a file descriptor) forever by sending a body slowly, or not at all. 120 s
         * still takes a 25 MB upload (uploadLimit) at about 210 KB/s (1.7 Mbit/s).
         */
        requestTimeoutMs: positiveMs.default(120_000),
        /**
         * Processes serving the one port (src/runtime/cluster-primary.ts): 1 is a single process,
         * `auto` one per core. More than 1 needs Redis (checked in crossReferenceProblems).
         */
        workers: workersSchema.default(1).transform(workerCount),
        /**
         * Whom to believe about the client's address (X-Forwarded-For): false, true (anyone), or
         * addresses/CIDRs of your proxies. Rate limits per IP depend on it.
         */
        trustProxy: z
          .union([z.boolean(), z.string().min(1), z.array(z.string().min(1))])
          .superRefine((value, ctx) => {
            if (typeof value === 'boolean') return;
            for (const { at, problem } of trustProxyProblems(value))
              ctx.addIssue({ code: 'custom', message: problem, path: at === undefined ? [] : [at] });
          })
          .default(false),
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
      .object({
        level: logLevel.default('info'),
        pretty: z.boolean().default(false),
        /** Which requests get a `request` line: all, errors (status >= 400, aborted, broken streams), none. */
        requests: z.enum(REQUEST_LINE_CHOICES).default('all'),
      })
      .strict()
      .prefault({}),
    /** Shared state for several instances; without it the gateway keeps state in memory. */
    redis: z
      .union([
        z.object({ url: checked(z.string(), redisUrlProblem) }).strict(),
        z
          .object({
            cluster: z
              .object({
                nodes: z.array(checked(z.string().min(1), redisNodeProblem)).min(1),
                password: z.string().optional(),
              })
              .strict(),
          })
          .strict(),
        z
          .object({
            sentinel: z
              .object({
                name: z.string().min(1),
                sentinels: z.array(checked(z.string().min(1), redisNodeProblem)).min(1),
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
            failedAttempts: failedAttemptsSchema,
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
          .refine(isKnownTimeZone, 'expected an IANA time zone such as UTC or Europe/Paris'),
        /** Output tokens reserved for a request that sets no max_tokens. */
        defaultMaxOutputTokens: z.number().int().positive().default(4_096),
        /** A reservation a lost process never settles stops counting after this long. */
        reservationTtlMs: z.number().int().positive().default(600_000),
        /**
         * Redis only: how long a finished request's settle may wait to go to Redis together with
         * its team's next request (one script call instead of two). 0 sends it at once.
         */
        settleHoldMs: z.number().int().min(0).max(1_000).default(0),
        /** USD per 1M tokens by upstream model name; extends and overrides the built-in table. */
        prices: z
          .record(
            z.string().min(1),
            z
              .object({
                input: z.number().nonnegative(),
                cachedInput: z.number().nonnegative().optional(),
                cacheWriteInput: z.number().nonnegative().optional(),
                cacheWriteInput1h: z.number().nonnegative().optional(),
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
        /**
         * Request bodies larger than this are neither looked up nor stored: the key's canonical form
         * and hash cost time on the event loop in proportion to the body (~250 ms for 15 MB).
         */
        maxRequestBytes: byteSize.default(1024 ** 2),
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
        failedAttempts: failedAttemptsSchema,
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
     * Public model name -> backend, or -> deployments. `*` sends any other name to a backend
     * unchanged; `prefix/*` sends `prefix/<name>` to a backend as `<name>`.
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
  // An invalid value is the schema's to report; this is only about where state lives.
  const workers = workersSchema.safeParse(isObject(raw.server) ? raw.server.workers : undefined);
  if (raw.redis === undefined && workers.success) {
    const count = workerCount(workers.data);
    if (count > 1)
      problems.push(
        `server.workers: ${workers.data === 'auto' ? `'auto' is ${count} on this machine, and ` : ''}${count} workers need Redis (redis, or REDIS_URL) to share teams, keys, limits and the cache; the embedded store lives in one process. Configure redis, or set workers: 1`,
      );
  }
  const backends = isObject(raw.backends) ? Object.keys(raw.backends) : [];
  const models = isObject(raw.models) ? Object.entries(raw.models) : [];
  const unknownBackend = (path: string, backend: unknown) => {
    if (typeof backend === 'string' && !backends.includes(backend))
      problems.push(`${path}: unknown backend '${backend}' (declared: ${backends.join(', ') || 'none'})`);
  };
  for (const [name, entry] of isObject(raw.backends) ? Object.entries(raw.backends) : []) {
    // `${KEY:-}` leaves apiKey empty, which means none.
    if (
      isObject(entry) &&
      entry.apiKeys !== undefined &&
      typeof entry.apiKey === 'string' &&
      entry.apiKey !== ''
    )
      problems.push(`backends.${name}: takes apiKey or apiKeys, not both`);
  }
  const exact = new Set(models.map(([name]) => name).filter((name) => !name.includes('*')));
  for (const [name, entry] of models) {
    const model = isObject(entry) ? entry : {};
    const wildcard = name.includes('*');
    unknownBackend(`models.${name}.backend`, model.backend);
    if (wildcard && name !== '*' && !/^[^*]+\/\*$/.test(name)) {
      problems.push(`models.${name}: wildcards are '*' or 'prefix/*'`);
    }
    if (wildcard && model.model !== undefined) {
      problems.push(
        `models.${name}.model: a wildcard route sends each name through as asked; it takes no model`,
      );
    }
    if (model.backend === undefined && model.deployments === undefined) {
      problems.push(
        `models.${name}: needs a backend, or deployments (a list of {backend, model, weight, …})`,
      );
    }
    if (model.deployments !== undefined) {
      if (model.backend !== undefined)
        problems.push(`models.${name}: takes a backend or deployments, not both`);
      else if (model.model !== undefined)
        problems.push(`models.${name}.model: with deployments, each deployment names its upstream model`);
      if (wildcard)
        problems.push(`models.${name}.deployments: a wildcard route takes one backend, not deployments`);
      problems.push(...deploymentProblems(name, model.deployments, unknownBackend));
    }
    for (const list of FALLBACK_LISTS) {
      const fallbacks = Array.isArray(model[list]) ? model[list] : [];
      for (const fallback of fallbacks) {
        if (typeof fallback === 'string' && !exact.has(fallback))
          problems.push(
            `models.${name}.${list}: unknown model '${fallback}' (fallbacks name models declared under models, not wildcard routes)`,
          );
      }
    }
  }
  for (const list of FALLBACK_LISTS) problems.push(...fallbackCycles(models, list));
  return problems;
}

/** Unknown backends and repeated names among one model's deployments. */
function deploymentProblems(
  model: string,
  deployments: unknown,
  unknownBackend: (path: string, backend: unknown) => void,
): string[] {
  if (!Array.isArray(deployments)) return [];
  const problems: string[] = [];
  const seen = new Set<string>();
  deployments.forEach((entry, i) => {
    const deployment = isObject(entry) ? entry : {};
    unknownBackend(`models.${model}.deployments.${i}.backend`, deployment.backend);
    const name = deployment.name ?? deployment.backend;
    if (typeof name !== 'string') return;
    if (seen.has(name))
      problems.push(
        `models.${model}.deployments.${i}.name: another deployment of this model is already called '${name}' (its backend's name unless set); give each its own name`,
      );
    seen.add(name);
  });
  return problems;
}

/** A model's lists of other models to try; each is checked for unknown names and circles. */
const FALLBACK_LISTS = ['fallbacks', 'contextFallbacks', 'contentPolicyFallbacks'] as const;

/** Each circle of one kind of fallbacks (a -> b -> a), reported once, at the first of its models. */
function fallbackCycles(models: Array<[string, unknown]>, list: (typeof FALLBACK_LISTS)[number]): string[] {
  const edges = new Map<string, string[]>();
  for (const [name, entry] of models) {
    const fallbacks = isObject(entry) && Array.isArray(entry[list]) ? entry[list] : [];
    edges.set(
      name,
      fallbacks.filter((fallback): fallback is string => typeof fallback === 'string'),
    );
  }
  const problems: string[] = [];
  const reported = new Set<string>();
  const done = new Set<string>();
  const visit = (name: string, path: string[]) => {
    const at = path.indexOf(name);
    if (at !== -1) {
      const circle = path.slice(at);
      const id = [...circle].sort().join('\n');
      if (!reported.has(id)) {
        reported.add(id);
        problems.push(
          `models.${circle[0]}.${list}: fallbacks go round in a circle: ${[...circle, circle[0]].join(' -> ')}`,
        );
      }
      return;
    }
    if (done.has(name)) return;
    for (const next of edges.get(name) ?? []) if (edges.has(next)) visit(next, [...path, name]);
    done.add(name);
  };
  for (const name of edges.keys()) visit(name, []);
  return problems;
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema> & {
  /**
   * Not the user's: the config file's folder (the working directory without a file), set by
   * parseConfig; relative paths in the config (a backend module's) resolve against it.
   */
  readonly configDir?: string;
  /**
   * Not the user's either: which config paths environment variables set (`redis.url` ->
   * REDIS_URL), so that a problem found after parsing (a data directory that cannot be used,
   * a Redis that cannot be reached) names what the operator actually wrote.
   */
  readonly fromEnvironment?: Readonly<Record<string, string>>;
};
export type BackendConfig = z.output<typeof backendSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type DeploymentConfig = z.output<typeof deploymentSchema>;
export type RoutingStrategy = (typeof routingStrategies)[number];
export type RetryConfig = z.output<typeof retrySchema>;
export type CircuitConfig = z.output<typeof circuitSchema>;

/** A model's retry and circuit settings when it sets none. */
export const DEFAULT_RETRY: RetryConfig = retrySchema.parse({});
export const DEFAULT_CIRCUIT: CircuitConfig = circuitSchema.parse({});
export type CacheConfig = z.output<typeof configSchema>['cache'];
export type CachePolicyConfig = z.output<typeof cachePolicySchema>;
export type TimeoutsConfig = z.output<typeof timeoutsSchema>;
