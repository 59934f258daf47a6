import type { AnswerShape, FinishReason, TokenUsage } from './answer-shape.js';
import { chatChunks, chatCompletion } from './chat-chunks.js';

/** chat.completion and chat.completion.chunk objects, field for field as OpenAI sends them. */
export function chatAnswer(options: {
  id: string;
  created: number;
  model: string;
  /** The client asked for the usage chunk: every chunk then carries `usage: null`. */
  includeUsage: boolean;
}): AnswerShape {
  const chunks = chatChunks(options);
  const chunk = chunks.chunk;
  return {
    json: (text: string, finishReason: FinishReason, usage: TokenUsage) =>
      chatCompletion(options, { content: text }, finishReason, usage),
    opening: () => chunk({ role: 'assistant', content: '', refusal: null }, null),
    delta: (text: string) => [chunk({ content: text }, null)],
    finish: (finishReason: FinishReason) => chunk({}, finishReason),
    usage: chunks.usage,
  };
}
