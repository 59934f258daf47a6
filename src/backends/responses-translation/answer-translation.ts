import { UpstreamError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import {
  functionCallItem,
  incompleteReasonOf,
  messageItem,
  newId,
  nowSeconds,
  outputText,
  reasoningItem,
  reasoningOfThinkingBlock,
  responseObject,
} from './response-object.js';
import type { UsageCount } from './usage-count.js';

/** The assistant message of a chat answer's first choice as Responses output items. */
function outputItems(message: Json): Json[] {
  const items: Json[] = [];
  // Claude's signed thinking first, as OpenAI's reasoning items come: sent back, it continues a tool turn.
  for (const block of Array.isArray(message.thinking_blocks) ? message.thinking_blocks : []) {
    const reasoning = reasoningOfThinkingBlock(block);
    if (reasoning) items.push(reasoningItem(newId('rs_'), 'completed', reasoning));
  }
  const content: Json[] = [];
  if (typeof message.content === 'string' && message.content !== '')
    content.push(outputText(message.content));
  if (typeof message.refusal === 'string' && message.refusal !== '')
    content.push({ type: 'refusal', refusal: message.refusal });
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  // An answer with neither text nor calls is still an (empty) assistant message, as OpenAI's is.
  if (content.length > 0 || calls.length === 0)
    items.push(messageItem(newId('msg_'), 'completed', content.length > 0 ? content : [outputText('')]));
  for (const call of calls) {
    if (!isObject(call)) continue;
    const fn = isObject(call.function) ? call.function : {};
    items.push(
      functionCallItem(newId('fc_'), 'completed', {
        callId: typeof call.id === 'string' && call.id !== '' ? call.id : newId('call_'),
        name: typeof fn.name === 'string' ? fn.name : '',
        arguments: typeof fn.arguments === 'string' ? fn.arguments : '',
      }),
    );
  }
  return items;
}

/**
 * The items of an answer cut short: the last one (the message, or the call after it) is the one
 * the model was generating when it stopped, so it is `incomplete`, as OpenAI's is.
 */
function cutShort(items: Json[]): Json[] {
  const last = items.at(-1);
  if (last) items[items.length - 1] = { ...last, status: 'incomplete' };
  return items;
}

/** What the model generated in a chat message, for counting when the backend reported no usage. */
function generatedTexts(message: Json): string[] {
  const texts = [message.content, message.refusal];
  for (const block of Array.isArray(message.thinking_blocks) ? message.thinking_blocks : [])
    texts.push(reasoningOfThinkingBlock(block)?.text);
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    const fn = isObject(call) && isObject(call.function) ? call.function : {};
    texts.push(fn.name, fn.arguments);
  }
  return texts.filter((text): text is string => typeof text === 'string');
}

/** A chat completion (JSON) as the Response object answering `body`. */
export function responseOfChatCompletion(
  body: Json,
  completion: unknown,
  model: string,
  count: UsageCount,
): Json {
  const choices = isObject(completion) && Array.isArray(completion.choices) ? completion.choices : [];
  const choice = choices[0];
  if (!isObject(completion) || !isObject(choice) || !isObject(choice.message))
    throw new UpstreamError('The backend answered without a chat completion choice.');
  const incompleteReason = incompleteReasonOf(choice.finish_reason);
  for (const text of generatedTexts(choice.message)) count.add(text);
  return responseObject(body, {
    id: newId('resp_'),
    createdAt: typeof completion.created === 'number' ? completion.created : nowSeconds(),
    model: typeof completion.model === 'string' ? completion.model : model,
    status: incompleteReason ? 'incomplete' : 'completed',
    incompleteReason,
    output: incompleteReason ? cutShort(outputItems(choice.message)) : outputItems(choice.message),
    usage: count.usageOf(completion.usage),
  });
}
