import type { ChatHistoryItem } from 'node-llama-cpp';
import { InvalidRequestError } from '../../errors.js';

function textOf(content: unknown, index: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) => {
        const typed = part as { type?: unknown; text?: unknown; refusal?: unknown } | null;
        if (typed?.type === 'text' && typeof typed.text === 'string') return typed.text;
        if (typed?.type === 'refusal' && typeof typed.refusal === 'string') return typed.refusal;
        throw new InvalidRequestError(
          `messages[${index}].content: in-process models take text only (got a '${String(typed?.type)}' part).`,
          `messages[${index}].content`,
        );
      })
      .join('');
  }
  throw new InvalidRequestError(
    `messages[${index}].content must be a string or a list of content parts.`,
    `messages[${index}].content`,
  );
}

/**
 * OpenAI chat messages as node-llama-cpp's chat history, ending with the empty model turn that
 * the chat template renders as the generation prompt.
 */
export function chatHistoryOf(messages: unknown): ChatHistoryItem[] {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new InvalidRequestError("'messages' must be a non-empty list of messages.", 'messages');
  const history: ChatHistoryItem[] = messages.map((message: unknown, index): ChatHistoryItem => {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    const text = textOf(content, index);
    switch (role) {
      case 'system':
      case 'developer':
        return { type: 'system', text };
      case 'user':
        return { type: 'user', text };
      case 'assistant':
        if (Array.isArray((message as { tool_calls?: unknown }).tool_calls))
          throw new InvalidRequestError(
            `messages[${index}]: tool calls are not supported by in-process models.`,
            `messages[${index}].tool_calls`,
          );
        return { type: 'model', response: [text] };
      case 'tool':
      case 'function':
        throw new InvalidRequestError(
          `messages[${index}]: tool results are not supported by in-process models.`,
          `messages[${index}].role`,
        );
      default:
        throw new InvalidRequestError(
          `messages[${index}].role must be one of system, developer, user, assistant.`,
          `messages[${index}].role`,
        );
    }
  });
  history.push({ type: 'model', response: [] });
  return history;
}
