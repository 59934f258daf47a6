import { isObject, type Json } from '../../json-values.js';
import type { MessagesRequest } from '../../schemas/anthropic/messages.js';
import { type ChatMessage, messagesToChat, systemToChat } from './content-to-chat.js';
import { toolsToChat } from './tools-to-chat.js';

/** Which chat field carries the output cap; see `MessagesTranslationOptions`. */
export type OutputTokensField = 'max_tokens' | 'max_completion_tokens';

/**
 * A Messages request as a chat completions request, field by field:
 * - `system`, `messages` (content-to-chat.ts), `tools`, `tool_choice` (tools-to-chat.ts);
 * - `max_tokens` -> `max_tokens` (or `max_completion_tokens`), `temperature`, `top_p`,
 *   `stop_sequences` -> `stop`, `metadata.user_id` -> `user`;
 * - `output_config.format` / `output_format` of type json_schema -> `response_format`;
 * - `stream` -> `stream` with `stream_options.include_usage` (the usage is needed for
 *   `message_delta` and for accounting whatever the client asked).
 * Dropped knowingly: `top_k` (OpenAI refuses it), `thinking` and `output_config.effort` (a chat
 * model that does not reason refuses `reasoning_effort`; one that does reasons anyway),
 * `context_management`, `container`, `mcp_servers`, `service_tier`, `inference_geo`,
 * `cache_control`, and any field this file does not name: they are Anthropic's, and an
 * OpenAI-compatible server refuses or ignores what it does not know.
 */
export function chatRequestOf(
  request: MessagesRequest,
  model: string,
  outputTokensField: OutputTokensField,
): { body: Json; messages: ChatMessage[] } {
  const messages = [...systemToChat(request.system), ...messagesToChat(request.messages)];
  const body: Json = { model, messages, [outputTokensField]: request.max_tokens };
  if (typeof request.temperature === 'number') body.temperature = request.temperature;
  if (typeof request.top_p === 'number') body.top_p = request.top_p;
  if (request.stop_sequences && request.stop_sequences.length > 0) body.stop = request.stop_sequences;
  if (typeof request.metadata?.user_id === 'string') body.user = request.metadata.user_id;
  Object.assign(body, toolsToChat(request));
  const format = responseFormatOf(request);
  if (format) body.response_format = format;
  if (request.stream === true) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return { body, messages };
}

/** Structured output: Anthropic's JSON schema format as chat's `response_format`. */
function responseFormatOf(request: MessagesRequest): Json | undefined {
  const config = isObject(request.output_config) ? request.output_config : {};
  const format = isObject(config.format) ? config.format : request.output_format;
  if (!isObject(format) || format.type !== 'json_schema' || !isObject(format.schema)) return undefined;
  return { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } };
}
