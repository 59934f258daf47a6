import { z } from 'zod';

/** Admin API bodies and queries (snake_case like OpenAI's); also the source of /admin/openapi.json. */
const modelList = z.array(z.string().min(1).max(200)).max(1_000);
const metadata = z.record(z.string(), z.unknown());
const unixSeconds = z.number().int().positive();

export const keyPolicySchema = z
  .object({
    models: modelList.optional(),
    expires_in_seconds: z.number().int().positive().optional(),
  })
  .strict();

export const createTeamSchema = z
  .object({
    name: z.string().min(1).max(200),
    models: modelList.min(1).optional(),
    default_key_policy: keyPolicySchema.nullable().optional(),
    metadata: metadata.optional(),
  })
  .strict();

export const updateTeamSchema = createTeamSchema.partial().strict();

export const createKeySchema = z
  .object({
    team_id: z.string().min(1),
    name: z.string().max(200).nullable().optional(),
    owner: z.string().max(320).nullable().optional(),
    models: modelList.nullable().optional(),
    expires_at: unixSeconds.nullable().optional(),
    metadata: metadata.optional(),
  })
  .strict();

export const updateKeySchema = z
  .object({
    name: z.string().max(200).nullable().optional(),
    owner: z.string().max(320).nullable().optional(),
    models: modelList.nullable().optional(),
    expires_at: unixSeconds.nullable().optional(),
    disabled: z.boolean().optional(),
    metadata: metadata.optional(),
  })
  .strict();

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
