import type { AnswerShape, FinishReason, TokenUsage } from './answer-shape.js';

export const LLAMA_CPP_FINGERPRINT = 'fp_tollgate_llama_cpp';

/** chat.completion and chat.completion.chunk objects, field for field as OpenAI sends them. */
export function chatAnswer(options: {
  id: string;
  created: number;
  model: string;
  /** The client asked for the usage chunk: every chunk then carries `usage: null`. */
  includeUsage: boolean;
}): AnswerShape {
  const base = {
    id: options.id,
    object: 'chat.completion.chunk',
    created: options.created,
    model: options.model,
    system_fingerprint: LLAMA_CPP_FINGERPRINT,
  };
  const usageField = options.includeUsage ? { usage: null } : {};
  const chunk = (delta: Record<string, unknown>, finishReason: FinishReason | null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...usageField,
  });
  return {
    json: (text: string, finishReason: FinishReason, usage: TokenUsage) => ({
      id: options.id,
      object: 'chat.completion',
      created: options.created,
      model: options.model,
      system_fingerprint: LLAMA_CPP_FINGERPRINT,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage,
    }),
    opening: () => chunk({ role: 'assistant', content: '', refusal: null }, null),
    delta: (text: string) => [chunk({ content: text }, null)],
    finish: (finishReason: FinishReason) => chunk({}, finishReason),
    usage: (usage: TokenUsage) => ({ ...base, choices: [], usage }),
  };
}
