import { randomBytes } from 'node:crypto';
import type { AnswerShape, FinishReason, TokenUsage } from './answer-shape.js';
import { chatChunks, chatCompletion } from './chat-chunks.js';
import { ToolCallText } from './tool-call-text.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `call_` and 24 letters and digits, like OpenAI's tool call ids. */
export function toolCallId(): string {
  return `call_${[...randomBytes(24)].map((byte) => ID_ALPHABET[byte % ID_ALPHABET.length]).join('')}`;
}

/**
 * A forced tool call as chat.completion and chat.completion.chunk objects, as OpenAI sends
 * them: `content: null` and one `tool_calls` entry; streamed, the call's id and name come first
 * (in the opening chunk when only one tool may be called), then its arguments in fragments.
 * A call cut by max_tokens keeps its partial arguments with `finish_reason: 'length'`.
 */
export function toolCallAnswer(options: {
  id: string;
  created: number;
  model: string;
  includeUsage: boolean;
  /** The one tool the call can be to, known before anything is generated. */
  knownName: string | undefined;
}): AnswerShape {
  const callId = toolCallId();
  const chunks = chatChunks(options);
  const chunk = chunks.chunk;
  const head = (name: string) => ({
    index: 0,
    id: callId,
    type: 'function',
    function: { name, arguments: '' },
  });
  const finishOf = (call: ToolCallText, finishReason: FinishReason) =>
    call.complete ? 'tool_calls' : finishReason;
  const streamed = new ToolCallText();
  let headSent = false;
  return {
    json: (text: string, finishReason: FinishReason, usage: TokenUsage) => {
      const call = new ToolCallText();
      call.push(text);
      const name = call.name ?? options.knownName;
      return chatCompletion(
        options,
        {
          content: null,
          // Cut before even the name was whole (several tools, tiny max_tokens): no call to tell.
          tool_calls:
            name !== undefined
              ? [{ id: callId, type: 'function', function: { name, arguments: call.arguments } }]
              : [],
        },
        finishOf(call, finishReason),
        usage,
      );
    },
    opening: () => {
      const delta: Record<string, unknown> = { role: 'assistant', content: null, refusal: null };
      if (options.knownName !== undefined) {
        delta.tool_calls = [head(options.knownName)];
        headSent = true;
      }
      return chunk(delta, null);
    },
    delta: (text: string) => {
      const { name, fragment } = streamed.push(text);
      const chunks: Record<string, unknown>[] = [];
      if (name !== undefined && !headSent) {
        chunks.push(chunk({ tool_calls: [head(name)] }, null));
        headSent = true;
      }
      if (fragment !== '')
        chunks.push(chunk({ tool_calls: [{ index: 0, function: { arguments: fragment } }] }, null));
      return chunks;
    },
    finish: (finishReason: FinishReason) => chunk({}, finishOf(streamed, finishReason)),
    usage: chunks.usage,
  };
}
