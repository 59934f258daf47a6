import { stringOf } from '../../json-values.js';

/**
 * Anthropic's stop_reason for a chat choice's finish_reason: stop -> end_turn (stop_sequence when
 * the upstream says which stop sequence ended it: vLLM's `stop_reason`; OpenAI never says, so it
 * is end_turn there), length -> max_tokens, tool_calls / function_call -> tool_use,
 * content_filter -> refusal. A server that calls tools but says `stop` still means tool_use; an
 * answer that is only a refusal (OpenAI's `refusal` field, said with `stop`) is a refusal.
 */
export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

export interface Stop {
  stop_reason: StopReason;
  stop_sequence: string | null;
}

export interface AnswerShape {
  calledTools: boolean;
  /** A refusal was all the model said. */
  onlyRefused: boolean;
  stopSequences: readonly string[];
}

export function stopOf(
  choice: { finish_reason?: unknown; stop_reason?: unknown },
  answer: AnswerShape,
): Stop {
  const matched = stringOf(choice.stop_reason);
  switch (choice.finish_reason) {
    case 'length':
      return { stop_reason: 'max_tokens', stop_sequence: null };
    case 'content_filter':
      return { stop_reason: 'refusal', stop_sequence: null };
    case 'tool_calls':
    case 'function_call':
      return { stop_reason: 'tool_use', stop_sequence: null };
    default:
      if (answer.calledTools) return { stop_reason: 'tool_use', stop_sequence: null };
      if (answer.onlyRefused) return { stop_reason: 'refusal', stop_sequence: null };
      if (matched !== '' && answer.stopSequences.includes(matched))
        return { stop_reason: 'stop_sequence', stop_sequence: matched };
      return { stop_reason: 'end_turn', stop_sequence: null };
  }
}
