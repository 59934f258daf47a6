import { UpstreamClientError } from '../errors.js';

/** Why an attempt was refused, when another model may take the request instead. */
export type TargetedFallbackKind = 'context' | 'contentPolicy';

/**
 * The upstream's `error.code` on a 400 that names each kind. OpenAI's spec types `error.code` as
 * a free string: `context_length_exceeded` is what OpenAI (and vLLM, LiteLLM) send for a prompt
 * too long for the model; `content_policy_violation` is OpenAI's refusal (images, moderation of
 * prompts), `image_content_policy_violation` the spec's `ResponseErrorCode` for the same, and
 * `content_filter` Azure OpenAI's. (`content_filter` as a `finish_reason` is a 200 answer, not a
 * refusal: it is the client's to read, never retried.)
 */
const CODES: Record<string, TargetedFallbackKind> = {
  context_length_exceeded: 'context',
  content_policy_violation: 'contentPolicy',
  image_content_policy_violation: 'contentPolicy',
  content_filter: 'contentPolicy',
};

/** Which targeted fallback an attempt's failure calls for; undefined for every other failure. */
export function targetedFallbackKind(error: unknown): TargetedFallbackKind | undefined {
  if (!(error instanceof UpstreamClientError) || error.status !== 400) return undefined;
  let code: unknown;
  try {
    const parsed = JSON.parse(error.upstreamBody.toString('utf8')) as { error?: { code?: unknown } };
    code = parsed.error?.code;
  } catch {
    return undefined;
  }
  return typeof code === 'string' && Object.hasOwn(CODES, code) ? CODES[code] : undefined;
}
