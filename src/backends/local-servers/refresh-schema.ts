import { z } from 'zod';

/** A backend's availability as the admin API shows it (see backend-availability.ts). */
export const availabilitySchema = z.object({
  state: z
    .enum(['available', 'unavailable', 'unknown'])
    .describe('unknown: not probed yet (routing still tries it)'),
  retry_after_ms: z.number().int().nullable().describe('unavailable: until the next probe'),
  checked_at: z.string().nullable().describe('when its server was last probed (ISO 8601)'),
  reason: z.string().nullable().describe('why it is unavailable'),
});

/** The answer of `POST /admin/backends/{name}/refresh`: the models the server lists now. */
export const refreshedModelsSchema = z.object({
  object: z.literal('list'),
  backend: z.string(),
  type: z.string().describe('ollama, vllm, llamacpp-server or lmstudio'),
  availability: availabilitySchema,
  data: z.array(z.object({ id: z.string(), object: z.literal('model'), owned_by: z.string() })),
});
