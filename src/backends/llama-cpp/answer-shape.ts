/** Token counts of one answer, as OpenAI reports them. */
export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; audio_tokens: number };
  completion_tokens_details: {
    reasoning_tokens: number;
    audio_tokens: number;
    accepted_prediction_tokens: number;
    rejected_prediction_tokens: number;
  };
}

export function tokenUsage(promptTokens: number, completionTokens: number): TokenUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** How the generation ended (a shape may tell it otherwise, as `tool_calls`). */
export type FinishReason = 'stop' | 'length';

/**
 * How one generated text is told in an endpoint's OpenAI shape: whole (JSON), or as stream
 * chunks (an opening chunk, the chunks of each piece of text, the finishing chunk, then the
 * usage chunk). A streaming shape may keep state: one per answer.
 */
export interface AnswerShape {
  json(text: string, finishReason: FinishReason, usage: TokenUsage): Record<string, unknown>;
  opening(): Record<string, unknown> | undefined;
  delta(text: string): Record<string, unknown>[];
  finish(finishReason: FinishReason): Record<string, unknown>;
  usage(usage: TokenUsage): Record<string, unknown>;
}
