import { InvalidRequestError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import { ChatParamPaths, type MessageOrigin } from './chat-param-paths.js';
import { REDACTED_PREFIX } from './response-object.js';

/**
 * A Responses API request (`POST /v1/responses`) as the chat completions request that asks the
 * same of a backend that only speaks chat. What chat cannot express is refused with a 400 that
 * names the parameter, never dropped silently: a client that relies on stored state or on
 * OpenAI's hosted tools must learn that this backend cannot give it.
 */

const present = (value: unknown): boolean => value !== undefined && value !== null;

/** Fields whose value is the same in both APIs and which chat completions has under the same name. */
const SAME_NAME_FIELDS = [
  'temperature',
  'top_p',
  'parallel_tool_calls',
  'user',
  'service_tier',
  'safety_identifier',
  'prompt_cache_key',
] as const;

function unsupported(message: string, param: string): InvalidRequestError {
  return new InvalidRequestError(message, param, 'unsupported_parameter');
}

/** Refuses what needs state or hosted features the gateway does not keep for this backend. */
function refuseStatefulFeatures(body: Json): void {
  if (present(body.previous_response_id))
    throw unsupported(
      "This model's backend speaks chat completions, and the gateway does not store responses: " +
        '`previous_response_id` cannot be resolved. Send the whole conversation in `input` instead.',
      'previous_response_id',
    );
  if (present(body.conversation))
    throw unsupported(
      "This model's backend speaks chat completions and the gateway keeps no conversations: " +
        'send the whole conversation in `input` instead of `conversation`.',
      'conversation',
    );
  if (body.background === true)
    throw unsupported(
      "Background responses need stored responses, which this model's backend does not have.",
      'background',
    );
  if (present(body.prompt))
    throw unsupported(
      "Stored prompt templates (`prompt`) are not available for this model's backend; send the text in `input`.",
      'prompt',
    );
}

/** Responses' flat function tool as chat's nested one; any other tool type is OpenAI-hosted. */
function chatTool(tool: unknown, index: number): Json {
  const param = `tools[${index}]`;
  if (!isObject(tool)) throw new InvalidRequestError('Expected a tool object.', param);
  if (tool.type !== 'function')
    throw unsupported(
      `Tool type '${String(tool.type)}' is an OpenAI-hosted tool, which this model's backend does not ` +
        'have; only `function` tools are supported.',
      `${param}.type`,
    );
  if (typeof tool.name !== 'string' || tool.name === '')
    throw new InvalidRequestError('A function tool needs a `name`.', `${param}.name`);
  const fn: Json = { name: tool.name };
  if (present(tool.description)) fn.description = tool.description;
  if (present(tool.parameters)) fn.parameters = tool.parameters;
  if (present(tool.strict)) fn.strict = tool.strict;
  return { type: 'function', function: fn };
}

function chatToolChoice(choice: unknown): unknown {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice;
  if (isObject(choice) && choice.type === 'function' && typeof choice.name === 'string')
    return { type: 'function', function: { name: choice.name } };
  if (isObject(choice) && choice.type === 'allowed_tools' && Array.isArray(choice.tools)) {
    const tools = choice.tools.map((tool, index) => {
      if (!isObject(tool) || tool.type !== 'function' || typeof tool.name !== 'string')
        throw unsupported('Only function tools can be allowed here.', `tool_choice.tools[${index}]`);
      return { type: 'function', function: { name: tool.name } };
    });
    return { type: 'allowed_tools', allowed_tools: { mode: choice.mode ?? 'auto', tools } };
  }
  throw unsupported(
    "This `tool_choice` names an OpenAI-hosted tool, which this model's backend does not have.",
    'tool_choice',
  );
}

/** `text.format` as chat's `response_format`; plain text needs none. */
function chatResponseFormat(format: unknown): Json | undefined {
  if (!isObject(format) || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.type === 'json_schema') {
    const schema: Json = { name: format.name ?? 'response', schema: format.schema };
    if (present(format.description)) schema.description = format.description;
    if (present(format.strict)) schema.strict = format.strict;
    return { type: 'json_schema', json_schema: schema };
  }
  throw new InvalidRequestError(`Unknown text format '${String(format.type)}'.`, 'text.format.type');
}

/** One content part of a user / system message, as chat's. */
function chatUserPart(part: unknown, param: string): Json {
  if (typeof part === 'string') return { type: 'text', text: part };
  if (!isObject(part)) throw new InvalidRequestError('Expected a content part object.', param);
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'text', text: String(part.text ?? '') };
    case 'input_image': {
      if (typeof part.image_url !== 'string')
        throw unsupported(
          "Images by `file_id` need OpenAI's file storage; send `image_url` (a URL or a data URL).",
          `${param}.file_id`,
        );
      const image: Json = { url: part.image_url };
      if (present(part.detail)) image.detail = part.detail;
      return { type: 'image_url', image_url: image };
    }
    case 'input_file': {
      if (present(part.file_url))
        throw unsupported('Files by URL are not supported here; send `file_data`.', `${param}.file_url`);
      const file: Json = {};
      for (const key of ['file_data', 'file_id', 'filename']) if (present(part[key])) file[key] = part[key];
      return { type: 'file', file };
    }
    default:
      throw unsupported(`Content part type '${String(part.type)}' is not supported here.`, `${param}.type`);
  }
}

function textOfParts(parts: Json[]): string {
  return parts.map((part) => (part.type === 'text' ? String(part.text) : '')).join('');
}

/** A message item (`{role, content}`) as a chat message. */
function chatMessage(item: Json, param: string): Json {
  const role = item.role;
  const content = item.content;
  if (role === 'assistant') {
    if (typeof content === 'string') return { role, content };
    const parts = Array.isArray(content) ? content : [];
    let text = '';
    let refusal = '';
    parts.forEach((part, index) => {
      if (isObject(part) && part.type === 'refusal') refusal += String(part.refusal ?? '');
      else text += textOfParts([chatUserPart(part, `${param}.content[${index}]`)]);
    });
    return { role, content: text, ...(refusal ? { refusal } : {}) };
  }
  if (role !== 'user' && role !== 'system' && role !== 'developer')
    throw new InvalidRequestError(
      `Invalid role '${String(role)}': expected user, system, developer or assistant.`,
      `${param}.role`,
    );
  // Local models' chat templates know `system`; `developer` is OpenAI's newer name for it.
  const chatRole = role === 'developer' ? 'system' : role;
  if (typeof content === 'string') return { role: chatRole, content };
  if (!Array.isArray(content))
    throw new InvalidRequestError('Expected `content` as a string or an array of parts.', `${param}.content`);
  const parts = content.map((part, index) => chatUserPart(part, `${param}.content[${index}]`));
  if (chatRole === 'system') {
    if (parts.some((part) => part.type !== 'text'))
      throw unsupported('System and developer messages can only hold text.', `${param}.content`);
    return { role: chatRole, content: textOfParts(parts) };
  }
  return { role: chatRole, content: parts };
}

function toolOutputText(output: unknown, param: string): string {
  if (typeof output === 'string') return output;
  if (Array.isArray(output))
    return textOfParts(output.map((part, index) => chatUserPart(part, `${param}.output[${index}]`)));
  throw new InvalidRequestError('Expected `output` as a string or an array of parts.', `${param}.output`);
}

/**
 * A reasoning item as the thinking block Claude signed (LiteLLM's `thinking_blocks`, which the
 * anthropic backend gives back to Claude); one without `encrypted_content` (another provider's,
 * or unsigned) has nothing Claude can check, and is left out.
 */
function thinkingBlockOf(item: Json): Json | undefined {
  const signature = item.encrypted_content;
  if (typeof signature !== 'string' || signature === '') return undefined;
  if (signature.startsWith(REDACTED_PREFIX))
    return { type: 'redacted_thinking', data: signature.slice(REDACTED_PREFIX.length) };
  const summary = Array.isArray(item.summary) ? item.summary : [];
  const thinking = summary
    .map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : ''))
    .join('');
  return { type: 'thinking', thinking, signature };
}

/** Whether reasoning items go to the chat backend, as `thinking_blocks` on the assistant turn. */
export interface ChatRequestOptions {
  /** The backend reads `thinking_blocks` (the anthropic backend); others never see the field. */
  thinkingBlocks?: boolean;
}

/** A chat message and the Responses item it was made from (for errors that name it). */
interface Translated {
  message: Json;
  origin: MessageOrigin;
}

/**
 * The `input` (or `instructions`) items as chat messages, `field` naming them in errors;
 * consecutive function calls become one assistant turn, and reasoning items before it become
 * its `thinking_blocks` (when the backend takes them; else they are dropped).
 */
function chatMessages(
  input: unknown,
  field: 'input' | 'instructions',
  options: ChatRequestOptions,
): Translated[] {
  if (typeof input === 'string')
    return [{ message: { role: 'user', content: input }, origin: { path: field, kind: 'text', calls: [] } }];
  if (!Array.isArray(input)) return [];
  const messages: Translated[] = [];
  /** Thinking blocks waiting for the assistant turn they came with. */
  let thinking: Json[] = [];
  const attachThinking = (message: Json) => {
    if (thinking.length === 0) return;
    const earlier = Array.isArray(message.thinking_blocks) ? message.thinking_blocks : [];
    message.thinking_blocks = [...earlier, ...thinking];
    thinking = [];
  };
  input.forEach((item, index) => {
    const param = `${field}[${index}]`;
    if (!isObject(item)) throw new InvalidRequestError('Expected an input item object.', param);
    const type = item.type ?? 'message';
    if (type === 'reasoning') {
      const block = options.thinkingBlocks ? thinkingBlockOf(item) : undefined;
      if (block) thinking.push(block);
      return;
    }
    if (type === 'message') {
      const message = chatMessage(item, param);
      if (message.role === 'assistant') attachThinking(message);
      else thinking = [];
      messages.push({ message, origin: { path: param, kind: 'message', calls: [] } });
      return;
    }
    if (type === 'function_call') {
      if (typeof item.call_id !== 'string' || typeof item.name !== 'string')
        throw new InvalidRequestError('A function_call item needs `call_id` and `name`.', param);
      const call = {
        id: item.call_id,
        type: 'function',
        function: { name: item.name, arguments: typeof item.arguments === 'string' ? item.arguments : '' },
      };
      // Calls right after an assistant turn (text then calls, or several calls) belong to it.
      const last = messages.at(-1);
      if (last?.message.role === 'assistant') {
        const turn = last.message;
        turn.tool_calls = [...(Array.isArray(turn.tool_calls) ? turn.tool_calls : []), call];
        if (turn.content === '') turn.content = null;
        attachThinking(turn);
        last.origin.calls.push(param);
      } else {
        const message: Json = { role: 'assistant', content: null, tool_calls: [call] };
        attachThinking(message);
        messages.push({ message, origin: { path: param, kind: 'message', calls: [param] } });
      }
      return;
    }
    thinking = [];
    if (type === 'function_call_output') {
      if (typeof item.call_id !== 'string')
        throw new InvalidRequestError('A function_call_output item needs `call_id`.', `${param}.call_id`);
      messages.push({
        message: { role: 'tool', tool_call_id: item.call_id, content: toolOutputText(item.output, param) },
        origin: { path: param, kind: 'tool_output', calls: [] },
      });
      return;
    }
    if (type === 'item_reference')
      throw unsupported(
        "An `item_reference` points at a stored item, and responses served by this model's backend are " +
          'not stored: send the item itself (with the Vercel AI SDK: providerOptions.openai.store = false).',
        param,
      );
    throw unsupported(
      `Input item type '${String(type)}' is not supported for this model's backend.`,
      `${param}.type`,
    );
  });
  return messages;
}

/** A translated request: the chat body, and where its parameters came from. */
export interface ChatRequest {
  chat: Json;
  paths: ChatParamPaths;
}

/** The chat completions body for a Responses API body, sent to `model`. */
export function chatRequestOf(
  body: Json,
  model: string,
  stream: boolean,
  options: ChatRequestOptions = {},
): Json {
  return translateRequest(body, model, stream, options).chat;
}

/** The chat completions request for a Responses API body, with the paths its errors map back by. */
export function translateRequest(
  body: Json,
  model: string,
  stream: boolean,
  options: ChatRequestOptions = {},
): ChatRequest {
  refuseStatefulFeatures(body);
  const translated = chatMessages(body.input, 'input', options);
  const instructions = body.instructions;
  if (typeof instructions === 'string' && instructions !== '')
    translated.unshift({
      message: { role: 'system', content: instructions },
      origin: { path: 'instructions', kind: 'text', calls: [] },
    });
  else if (Array.isArray(instructions))
    translated.unshift(...chatMessages(instructions, 'instructions', options));
  if (translated.length === 0)
    throw new InvalidRequestError('`input` must hold at least one message.', 'input');
  const messages = translated.map((entry) => entry.message);
  const chat: Json = { model, messages };
  for (const field of SAME_NAME_FIELDS) if (present(body[field])) chat[field] = body[field];
  if (present(body.max_output_tokens)) chat.max_tokens = body.max_output_tokens;
  if (Array.isArray(body.tools) && body.tools.length > 0) chat.tools = body.tools.map(chatTool);
  if (present(body.tool_choice)) chat.tool_choice = chatToolChoice(body.tool_choice);
  const text = isObject(body.text) ? body.text : {};
  const responseFormat = chatResponseFormat(text.format);
  if (responseFormat) chat.response_format = responseFormat;
  if (present(text.verbosity)) chat.verbosity = text.verbosity;
  const reasoning = isObject(body.reasoning) ? body.reasoning : {};
  if (present(reasoning.effort)) chat.reasoning_effort = reasoning.effort;
  if (stream) {
    chat.stream = true;
    // The usage chunk is what the Response's usage (and the gateway's accounting) is built from.
    chat.stream_options = { include_usage: true };
  }
  return { chat, paths: new ChatParamPaths(translated.map((entry) => entry.origin)) };
}
