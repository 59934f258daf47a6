import type { TokenUsage } from './answer-shape.js';

export const LLAMA_CPP_FINGERPRINT = 'fp_tollgate_llama_cpp';

/**
 * The chat.completion.chunk objects of one streamed answer, as OpenAI sends them: each with the
 * answer's id, created, model and fingerprint, and `usage: null` when the client asked for the
 * usage chunk (which then comes last, with `choices: []`).
 */
export function chatChunks(options: { id: string; created: number; model: string; includeUsage: boolean }) {
  const base = {
    id: options.id,
    object: 'chat.completion.chunk',
    created: options.created,
    model: options.model,
    system_fingerprint: LLAMA_CPP_FINGERPRINT,
  };
  const usageField = options.includeUsage ? { usage: null } : {};
  return {
    chunk: (delta: Record<string, unknown>, finishReason: string | null) => ({
      ...base,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...usageField,
    }),
    usage: (usage: TokenUsage) => ({ ...base, choices: [], usage }),
  };
}
