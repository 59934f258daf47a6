import { z } from 'zod';
import { availabilitySchema } from '../backends/local-servers/refresh-schema.js';
import { LIMIT_NAMES } from '../registry/records.js';

/** Admin API bodies and queries (snake_case like OpenAI's); also the source of /admin/openapi.json. */
/**
 * An exact model name, `*` or `prefix/*`: a `*` anywhere else would be taken for a pattern by
 * whoever wrote it and match only itself.
 */
const modelPattern = z
  .string()
  .min(1)
  .max(200)
  .refine((name) => !name.includes('*') || name === '*' || /^[^*]+\/\*$/.test(name), {
    message: "expected a model name, '*' or 'prefix/*' ('*' works only there)",
  });
const modelList = z.array(modelPattern).max(1_000);
/** Shown in lists, logs and the CLI's tables: no line breaks or other control characters. */
const displayName = (max: number) =>
  z
    .string()
    .max(max)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    .refine((name) => !/[\u0000-\u001f\u007f]/.test(name), { message: 'expected no control characters' });
/** Free-form, but read with its team or key on every auth refresh: kept small. */
const METADATA_MAX_BYTES = 16 * 1024;
const metadata = z
  .record(z.string(), z.unknown())
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= METADATA_MAX_BYTES, {
    message: `expected at most ${METADATA_MAX_BYTES / 1024} KB of JSON`,
  });

/** 9999-12-31T23:59:59Z: past it, dates stop printing as four-digit years (and, further on, at all). */
const MAX_UNIX_SECONDS = 253_402_300_799;
/**
 * 2001-09-09T01:46:40Z in milliseconds: a timestamp in milliseconds sent by mistake (the usual
 * way past the bound) is at least this. Just past the bound, a value is seconds, merely too late.
 */
const MILLISECONDS_FROM = 1_000_000_000_000;
const LATEST = `expected Unix seconds no later than ${MAX_UNIX_SECONDS} (9999-12-31T23:59:59Z)`;
const unixSeconds = z
  .number()
  .int()
  .positive()
  // Before the bare bound below, so these messages (not the generic range) are what the client
  // reads; the first that fails is the one said.
  .refine((seconds) => seconds <= MAX_UNIX_SECONDS || seconds < MILLISECONDS_FROM, {
    message: `${LATEST}; this looks like a timestamp in milliseconds, 1000 times too large`,
  })
  .refine((seconds) => seconds <= MAX_UNIX_SECONDS, { message: LATEST })
  .max(MAX_UNIX_SECONDS);

/** A hundred years: a default key lifetime must still end before the latest expires_at. */
const MAX_KEY_LIFETIME_SECONDS = 100 * 365 * 86_400;

/**
 * Budgets are counted in whole micro-dollars, exactly, so a max_usd must be at least one of them
 * and stay well within the safe-integer range once multiplied by a million (about $9.007e9).
 */
const MIN_BUDGET_USD = 0.000_001;
const MAX_BUDGET_USD = 1_000_000_000;

/** zod's int() already keeps these within the safe-integer range the quota counters need. */
const positiveInt = z.number().int().positive();

/** Set a limit with a number, remove it with null (PATCH), leave it out to keep it. */
export const limitsSchema = z
  .object(
    Object.fromEntries(LIMIT_NAMES.map((name) => [name, positiveInt.nullable().optional()])) as Record<
      (typeof LIMIT_NAMES)[number],
      z.ZodOptional<z.ZodNullable<typeof positiveInt>>
    >,
  )
  .strict();

/** Limits as stored and shown (no nulls). */
export const limitValuesSchema = z
  .object(
    Object.fromEntries(LIMIT_NAMES.map((name) => [name, positiveInt.optional()])) as Record<
      (typeof LIMIT_NAMES)[number],
      z.ZodOptional<typeof positiveInt>
    >,
  )
  .strict();

const budgetSchema = z
  .object({
    period: z.enum(['day', 'month', 'lifetime']),
    max_tokens: positiveInt.optional(),
    max_usd: z.number().min(MIN_BUDGET_USD).max(MAX_BUDGET_USD).optional(),
  })
  .strict()
  .refine((budget) => budget.max_tokens !== undefined || budget.max_usd !== undefined, {
    message: 'a budget needs max_tokens, max_usd or both',
  });

export const budgetsSchema = z
  .array(budgetSchema)
  .max(3)
  .refine((budgets) => new Set(budgets.map((b) => b.period)).size === budgets.length, {
    message: 'one budget per period',
  });

/** A team's limits and budgets per model name; PATCH replaces the map whole, null empties it. */
export const modelLimitsSchema = z
  .record(
    z.string().min(1).max(200),
    z.object({ limits: limitValuesSchema.optional(), budgets: budgetsSchema.optional() }).strict(),
  )
  .refine((map) => Object.keys(map).length <= 100, { message: 'at most 100 models' });

/** ③ cache policy on a team or key; PATCH replaces it whole, null removes it. */
export const cachePolicySchema = z
  .object({
    enabled: z.boolean().optional(),
    ttl: positiveInt
      .max(365 * 86_400)
      .optional()
      .describe('seconds'),
    max_temperature: z.number().min(0).max(2).optional(),
    scope: z.enum(['team', 'key', 'global']).optional(),
  })
  .strict();

export const keyPolicySchema = z
  .object({
    models: modelList.optional(),
    expires_in_seconds: positiveInt.max(MAX_KEY_LIFETIME_SECONDS).optional(),
    limits: limitValuesSchema.optional(),
    budgets: budgetsSchema.optional(),
  })
  .strict();

export const createTeamSchema = z
  .object({
    name: displayName(200).min(1),
    models: modelList.min(1).optional(),
    default_key_policy: keyPolicySchema.nullable().optional(),
    limits: limitsSchema.nullable().optional(),
    budgets: budgetsSchema.nullable().optional(),
    model_limits: modelLimitsSchema.nullable().optional(),
    cache: cachePolicySchema.nullable().optional(),
    metadata: metadata.optional(),
  })
  .strict();

export const updateTeamSchema = createTeamSchema.partial().strict();

/** What a key's owner can change; creating a key takes the same plus its team. */
const keyFields = {
  name: displayName(200).nullable().optional(),
  owner: displayName(320).nullable().optional(),
  models: modelList.nullable().optional(),
  expires_at: unixSeconds.nullable().optional(),
  limits: limitsSchema.nullable().optional(),
  budgets: budgetsSchema.nullable().optional(),
  cache: cachePolicySchema.nullable().optional(),
  metadata: metadata.optional(),
};

export const createKeySchema = z.object({ team_id: z.string().min(1), ...keyFields }).strict();

export const updateKeySchema = z.object({ ...keyFields, disabled: z.boolean().optional() }).strict();

export const rotateKeySchema = z
  .object({
    grace_seconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 24 * 3600)
      .optional(),
  })
  .strict();

export const listQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    after: z.string().min(1).optional(),
    team_id: z.string().min(1).optional(),
  })
  .strict();

export const deleteTeamQuerySchema = z.object({ force: z.enum(['true', 'false']).optional() }).strict();

/** Response shapes, for the OpenAPI document (the handlers build them in registry/public-objects.ts). */
const timestamp = z.number().int().describe('Unix seconds');
export const teamObjectSchema = z.object({
  id: z.string(),
  object: z.literal('team'),
  name: z.string(),
  models: z.array(z.string()),
  default_key_policy: keyPolicySchema.nullable(),
  limits: limitValuesSchema,
  budgets: budgetsSchema,
  model_limits: modelLimitsSchema,
  cache: cachePolicySchema.nullable(),
  metadata,
  active_keys: z.number().int().optional(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const keyObjectSchema = z.object({
  id: z.string(),
  object: z.literal('api_key'),
  name: z.string().nullable(),
  owner: z.string().nullable(),
  team_id: z.string(),
  models: z.array(z.string()).nullable(),
  expires_at: timestamp.nullable(),
  limits: limitValuesSchema,
  budgets: budgetsSchema,
  cache: cachePolicySchema.nullable(),
  disabled: z.boolean(),
  revoked_at: timestamp.nullable(),
  status: z.enum(['active', 'disabled', 'expired', 'revoked']),
  metadata,
  created_at: timestamp,
  updated_at: timestamp,
  last_used_at: timestamp.nullable(),
  preview: z.string(),
});

export const issuedKeySchema = keyObjectSchema.extend({
  key: z.string().describe('The plaintext key, tg-<id>-<secret>. Returned only here.'),
});

export const auditEventSchema = z.object({
  id: z.string(),
  object: z.literal('audit_event'),
  created_at: timestamp,
  actor: z.string(),
  action: z.enum([
    'team.create',
    'team.update',
    'team.delete',
    'key.create',
    'key.update',
    'key.rotate',
    'key.revoke',
  ]),
  target_type: z.enum(['team', 'api_key']),
  target_id: z.string(),
  before: z.record(z.string(), z.unknown()).nullable(),
  after: z.record(z.string(), z.unknown()).nullable(),
});

export const errorObjectSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});

export function listOf<T extends z.ZodType>(item: T) {
  return z.object({
    object: z.literal('list'),
    data: z.array(item),
    first_id: z.string().nullable(),
    last_id: z.string().nullable(),
    has_more: z.boolean(),
  });
}

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a UTC day, YYYY-MM-DD')
  // 2026-02-30 has the form but is no day (Date.parse rolls it over or gives NaN).
  .refine((text) => {
    const at = Date.parse(`${text}T00:00:00Z`);
    return !Number.isNaN(at) && new Date(at).toISOString().startsWith(text);
  }, 'expected a real calendar day, YYYY-MM-DD');

export const usageQuerySchema = z
  .object({
    team_id: z.string().min(1).optional(),
    key_id: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    from: day.optional(),
    to: day.optional(),
    group_by: z.enum(['day', 'model', 'key', 'team']).default('day'),
  })
  .strict();

export const requestsQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    before: z.string().min(1).optional(),
  })
  .strict();

export const usageReportSchema = z.object({
  object: z.literal('list'),
  from: z.string(),
  to: z.string(),
  group_by: z.enum(['day', 'model', 'key', 'team']),
  data: z.array(
    z.object({
      day: z.string().optional(),
      model: z.string().optional(),
      key_id: z.string().optional(),
      team_id: z.string().optional(),
      requests: z.number().int().describe('served: a 2xx answer from the upstream or the response cache'),
      rejected: z.number().int().describe("refused by the gateway's own limits or budgets (its 429s)"),
      invalid: z
        .number()
        .int()
        .describe('refused by the gateway for the request itself (a 4xx other than 429)'),
      failed: z
        .number()
        .int()
        .describe(
          'no complete answer: upstream errors, unreachable or timed out, a stream broken after its 200, gateway errors, or the client left first',
        ),
      prompt_tokens: z.number().int(),
      completion_tokens: z.number().int(),
      total_tokens: z.number().int(),
      cost_usd: z.number(),
      cache_hits: z.number().int(),
      cache_misses: z.number().int(),
      cache_entries: z.number().int().optional().describe('group_by=team: team-scoped entries held now'),
      cache_bytes: z.number().int().optional().describe('group_by=team: their bytes'),
    }),
  ),
});

export const cacheQuerySchema = z
  .object({
    team_id: z.string().min(1).optional(),
    key_id: z.string().min(1).optional(),
    scope: z.literal('global').optional().describe('the entries every team shares'),
  })
  .strict();

export const cachePurgeQuerySchema = cacheQuerySchema
  .extend({
    model: z.string().min(1).optional(),
    all: z.enum(['true']).optional().describe('required to purge every entry of every scope'),
  })
  .strict();

export const cacheStatsSchema = z.object({
  object: z.literal('list'),
  data: z.array(
    z.object({
      scope: z.string(),
      team_id: z.string().optional(),
      key_id: z.string().optional(),
      entries: z.number().int(),
      bytes: z.number().int(),
    }),
  ),
});

export const cachePurgeSchema = z.object({ object: z.literal('cache.purge'), deleted: z.number().int() });

export const requestLogEntrySchema = z.object({
  id: z.string(),
  object: z.literal('request'),
  created_at: timestamp,
  request_id: z.string(),
  team_id: z.string(),
  key_id: z.string(),
  model: z.string(),
  deployment: z.string(),
  status: z.number().int(),
  outcome: z
    .enum(['served', 'rejected', 'invalid', 'failed'])
    .nullable()
    .describe('which usage count it is in; null on entries recorded before outcomes were kept'),
  stream: z.boolean(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
  cached_tokens: z.number().int(),
  reasoning_tokens: z.number().int(),
  cost_usd: z.number(),
  unpriced: z.boolean(),
  estimated: z.boolean(),
  latency_ms: z.number().int(),
  ttft_ms: z.number().int().nullable(),
  cache: z.enum(['hit', 'miss', 'bypass', 'refresh']).nullable(),
  tags: z.array(z.string()),
  attempts: z
    .array(
      z.object({
        deployment: z.string(),
        status: z
          .union([z.number().int(), z.enum(['circuit-open', 'at-limit', 'unavailable', 'aborted'])])
          .describe("the upstream's or the gateway's status, or why the deployment was skipped"),
        duration_ms: z.number(),
      }),
    )
    .describe('every deployment tried or skipped, in order; [] when none was (a cache hit, a refusal)'),
});

export const deploymentListSchema = z.object({
  object: z.literal('list'),
  data: z.array(
    z.object({
      object: z.literal('deployment'),
      id: z.string().describe('`<model>/<name>`: names its circuit and limit counters in the store'),
      model: z.string().describe('the `models` entry: a public name, `*` or `prefix/*`'),
      name: z.string().describe('as in `x-tollgate-backend` and the request log'),
      backend: z.string(),
      upstream_model: z.string().nullable().describe('null on a wildcard route: the asked name goes through'),
      weight: z.number(),
      priority: z.number().int(),
      circuit: z.object({
        enabled: z.boolean().describe("false: the model's circuit breaker is off (always closed)"),
        state: z.enum(['closed', 'open', 'half-open']).describe('shared by every instance on the store'),
        consecutive_failures: z.number().int(),
        window_requests: z.number().int().describe('outcomes counted in the failure-ratio window'),
        window_failures: z.number().int(),
        retry_after_ms: z.number().int().nullable().describe('open: until one probe is let through'),
        probing: z.boolean().describe('half-open: an instance is probing it now'),
      }),
      in_flight: z
        .number()
        .int()
        .describe('requests to it under way on the instance that answered (per instance)'),
      latency_ms: z
        .number()
        .nullable()
        .describe('time to first byte, EWMA, as measured by the instance that answered (per instance)'),
      limits: z.object({
        requests_per_minute: z.number().int().nullable(),
        tokens_per_minute: z.number().int().nullable(),
        max_concurrent: z.number().int().nullable(),
      }),
      availability: availabilitySchema
        .optional()
        .describe('backends that can be found down (local servers): their last probe'),
    }),
  ),
});
