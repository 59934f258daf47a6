import { UpstreamError } from '../../errors.js';
import { isChargeableUsage } from '../credible-usage.js';
import { type AnthropicUsage, toChatUsage } from './anthropic-usage.js';
import { finishReasonOf } from './finish-reason.js';

type Json = Record<string, unknown>;

/** A thinking block as OpenAI-compatible clients carry it back (LiteLLM's `thinking_blocks`). */
export type ThinkingBlock =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string };

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * A Messages API answer as a `chat.completion`. Text blocks join into `content`, tool_use blocks
 * become `tool_calls`, thinking goes to `reasoning_content` (the field DeepSeek, vLLM and LiteLLM
 * use) with the signed blocks in `thinking_blocks` so a client can send them back.
 */
export function messageToChat(message: unknown, created: number): Json {
  if (!isObject(message) || !Array.isArray(message.content))
    throw new UpstreamError('The Anthropic upstream answered with something that is not a message.');
  let text = '';
  let reasoning = '';
  const toolCalls: Json[] = [];
  const thinkingBlocks: ThinkingBlock[] = [];
  for (const block of message.content) {
    if (!isObject(block)) continue;
    if (block.type === 'text' && typeof block.text === 'string') text += block.text;
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) },
      });
    } else if (block.type === 'thinking' && typeof block.thinking === 'string') {
      reasoning += block.thinking;
      thinkingBlocks.push({
        type: 'thinking',
        thinking: block.thinking,
        signature: String(block.signature ?? ''),
      });
    } else if (block.type === 'redacted_thinking' && typeof block.data === 'string') {
      thinkingBlocks.push({ type: 'redacted_thinking', data: block.data });
    }
    // Server tool blocks (web search and the like) have no Chat Completions form.
  }
  const chatMessage: Json = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    refusal: null,
  };
  if (toolCalls.length > 0) chatMessage.tool_calls = toolCalls;
  if (thinkingBlocks.length > 0) {
    chatMessage.reasoning_content = reasoning;
    chatMessage.thinking_blocks = thinkingBlocks;
  }
  return {
    id: typeof message.id === 'string' ? message.id : 'msg_unknown',
    object: 'chat.completion',
    created,
    model: typeof message.model === 'string' ? message.model : '',
    choices: [
      {
        index: 0,
        message: chatMessage,
        finish_reason: finishReasonOf(message.stop_reason),
        logprobs: null,
      },
    ],
    // Usage that is not counts, or lacks input_tokens or output_tokens, is left out (toChatUsage
    // would make what it lacks a 0, charged as given): the gateway counts the answer itself,
    // estimated (credible-usage.ts), as for an answer with no usage at all.
    ...(isObject(message.usage) && isChargeableUsage(message.usage, true)
      ? { usage: toChatUsage(message.usage as AnthropicUsage) }
      : {}),
  };
}
