import type { TokenUsage } from './answer-shape.js';

export const LLAMA_CPP_FINGERPRINT = 'fp_tollgate_llama_cpp';

/**
 * The non-streamed chat.completion object of an answer, as OpenAI sends it: one choice whose
 * message is `message` (role, content, tool calls) completed with OpenAI's empty fields.
 */
export function chatCompletion(
  options: { id: string; created: number; model: string },
  message: { content: string | null; tool_calls?: unknown[] },
  finishReason: string,
  usage: TokenUsage,
) {
  return {
    id: options.id,
    object: 'chat.completion',
    created: options.created,
    model: options.model,
    system_fingerprint: LLAMA_CPP_FINGERPRINT,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content,
          refusal: null,
          annotations: [],
          ...toolCalls(message),
        },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage,
  };
}

// OpenAI leaves `tool_calls` out of a message that has none.
function toolCalls(message: { tool_calls?: unknown[] }) {
  return message.tool_calls && message.tool_calls.length > 0 ? { tool_calls: message.tool_calls } : {};
}

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
