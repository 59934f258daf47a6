import { type Json, listOf, objectOf, stringOf } from '../../json-values.js';
import { countTextTokens } from '../../usage/token-counter.js';
import { messageIdOf, toolUseIdOf } from './message-ids.js';
import { countedUsage, messagesUsageOf } from './messages-usage.js';
import { stopOf } from './stop-reason.js';
import { toolInputOf } from './tool-input.js';

/** What answering needs to know about the request. */
export interface AnswerContext {
  /** The model named when the upstream's answer names none. */
  model: string;
  stopSequences: readonly string[];
  /** Prompt tokens counted by the gateway, for an upstream that reports no usage. */
  countInputTokens: () => number;
  /** Set when the answer's usage was counted here (the upstream reported none). */
  counted: { usage: boolean };
}

/** A chat message's text: a string, or (some servers) an array of text parts. */
export function textOfChatContent(content: unknown): string {
  if (typeof content === 'string') return content;
  return listOf(content)
    .map((part) => stringOf(objectOf(part).text))
    .join('');
}

/** Reasoning, under the names OpenAI-compatible servers use for it (vLLM, DeepSeek, OpenRouter). */
export function reasoningOf(messageOrDelta: Json): string {
  return stringOf(messageOrDelta.reasoning_content) || stringOf(messageOrDelta.reasoning);
}

/**
 * A chat completion as a Message: reasoning as a thinking block (with an empty signature: there
 * is none to give), then the text (a refusal is text too, with stop_reason `refusal`), then one
 * tool_use block per tool call.
 */
export function messageOfChat(chat: Json, context: AnswerContext): Json {
  const choice = objectOf(listOf(chat.choices)[0]);
  const message = objectOf(choice.message);
  const content: Json[] = [];
  const thinking = reasoningOf(message);
  if (thinking) content.push({ type: 'thinking', thinking, signature: '' });
  const said = textOfChatContent(message.content);
  const refusal = stringOf(message.refusal);
  const text = said || refusal;
  if (text) content.push({ type: 'text', text });
  const calls = listOf(message.tool_calls).map(objectOf);
  for (const call of calls) {
    const fn = objectOf(call.function);
    content.push({
      type: 'tool_use',
      id: toolUseIdOf(call.id),
      name: stringOf(fn.name),
      input: toolInputOf(stringOf(fn.arguments)).input,
    });
  }
  const stop = stopOf(choice, {
    calledTools: calls.length > 0,
    onlyRefused: refusal !== '' && said === '',
    stopSequences: context.stopSequences,
  });
  const reported = messagesUsageOf(chat.usage);
  if (!reported) context.counted.usage = true;
  const usage =
    reported ??
    countedUsage(
      context.countInputTokens(),
      countTextTokens([thinking, text, ...calls.map((c) => stringOf(objectOf(c.function).arguments))]),
    );
  return {
    id: messageIdOf(chat.id),
    type: 'message',
    role: 'assistant',
    model: typeof chat.model === 'string' && chat.model !== '' ? chat.model : context.model,
    content,
    stop_reason: stop.stop_reason,
    stop_sequence: stop.stop_sequence,
    usage,
  };
}
