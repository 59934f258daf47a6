import type { AnswerShape, FinishReason, TokenUsage } from './answer-shape.js';
import { LLAMA_CPP_FINGERPRINT } from './chat-chunks.js';

/** Legacy text_completion objects (JSON and stream chunks share the object name). */
export function completionAnswer(options: { id: string; created: number; model: string }): AnswerShape {
  // Unlike chat chunks, text_completion chunks carry no `usage: null` (the spec's schema refuses it).
  const base = {
    id: options.id,
    object: 'text_completion',
    created: options.created,
    model: options.model,
    system_fingerprint: LLAMA_CPP_FINGERPRINT,
  };
  const chunk = (text: string, finishReason: FinishReason | null) => ({
    ...base,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
  });
  return {
    json: (text: string, finishReason: FinishReason, usage: TokenUsage) => ({
      ...base,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
      usage,
    }),
    opening: () => undefined,
    delta: (text: string) => [chunk(text, null)],
    finish: (finishReason: FinishReason) => chunk('', finishReason),
    usage: (usage: TokenUsage) => ({ ...base, choices: [], usage }),
  };
}
