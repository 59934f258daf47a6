import { InvalidRequestError } from '../../errors.js';
import { parseKeepingNumbers } from '../../json-numbers.js';

/**
 * Chat Completions request -> Messages API request. The Messages API refuses fields it does not
 * know, so nothing is forwarded blindly: what has a counterpart is translated, what would change
 * the answer without one (n > 1, logprobs, audio, json_object) is refused with a 400 naming the
 * field, and everything else (seed, store, metadata, penalties, logit_bias, stream_options, ...)
 * is left out, since the Messages API would refuse it. The README's "Claude models" section
 * lists each.
 */

type Json = Record<string, unknown>;
type Block = Json;

export interface TranslationOptions {
  /** `max_tokens` when the request sets none. */
  defaultMaxTokens: number;
  thinkingBudgets: { low: number; medium: number; high: number };
}

interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

const DATA_URL = /^data:([^;,]+)(;[^,]*)?,(.*)$/s;
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function refuse(message: string, param: string): never {
  throw new InvalidRequestError(message, param);
}

export function chatToMessages(body: Json, model: string, options: TranslationOptions): Json {
  if (typeof body.n === 'number' && body.n > 1)
    refuse("Invalid 'n': Claude models return one choice per request; send n = 1 or leave it out.", 'n');
  if (body.logprobs === true || (typeof body.top_logprobs === 'number' && body.top_logprobs > 0))
    refuse("'logprobs' is not supported by Claude models.", 'logprobs');
  if (body.audio !== undefined && body.audio !== null)
    refuse("'audio' output is not supported by Claude models.", 'audio');
  if (Array.isArray(body.modalities) && body.modalities.some((modality) => modality !== 'text'))
    refuse("Claude models answer with text only: 'modalities' may only hold 'text'.", 'modalities');
  if (body.functions !== undefined || body.function_call !== undefined)
    refuse("The deprecated 'functions' field is not supported here; use 'tools'.", 'functions');

  const { system, turns } = translateMessages(body.messages);
  const request: Json = { model, messages: turns };
  if (system.length > 0) request.system = system;

  const asked =
    positiveInt(body.max_completion_tokens, 'max_completion_tokens') ??
    positiveInt(body.max_tokens, 'max_tokens');
  const thinking = thinkingFor(body, asked, options);
  request.max_tokens = asked ?? options.defaultMaxTokens + (thinking?.budget ?? 0);
  if (thinking) request.thinking = thinking.config;

  if (body.temperature !== undefined && body.temperature !== null) {
    if (typeof body.temperature !== 'number' || body.temperature < 0 || body.temperature > 1)
      refuse("Invalid 'temperature': Claude models take 0 to 1.", 'temperature');
    request.temperature = body.temperature;
  }
  if (typeof body.top_p === 'number') request.top_p = body.top_p;
  // Not OpenAI's, but Anthropic's own sampling knob: harmless to pass on where a client sends it.
  if (typeof body.top_k === 'number') request.top_k = body.top_k;
  const stop = stopSequences(body.stop);
  if (stop) request.stop_sequences = stop;
  if (typeof body.user === 'string' && body.user !== '') request.metadata = { user_id: body.user };
  if (body.stream === true) request.stream = true;

  const tools = translateTools(body.tools);
  if (tools.length > 0) {
    request.tools = tools;
    const choice = toolChoice(body.tool_choice, body.parallel_tool_calls);
    if (choice) request.tool_choice = choice;
  }
  const format = outputFormat(body.response_format);
  if (format) request.output_config = { format };

  return request;
}

function positiveInt(value: unknown, param: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    refuse(`Invalid '${param}': expected a positive integer.`, param);
  return value;
}

/**
 * Extended thinking. OpenAI clients ask with `reasoning_effort` (low / medium / high, mapped to a
 * thinking budget from config; minimal / none: no thinking); a client that knows Anthropic may
 * send its own `thinking` object, which is passed on as is. The budget counts inside
 * `max_tokens` and must stay below it.
 */
function thinkingFor(
  body: Json,
  maxTokens: number | undefined,
  options: TranslationOptions,
): { config: Json; budget: number } | undefined {
  if (isObject(body.thinking)) {
    const budget = typeof body.thinking.budget_tokens === 'number' ? body.thinking.budget_tokens : 0;
    return { config: body.thinking, budget };
  }
  const effort = body.reasoning_effort;
  if (effort === undefined || effort === null || effort === 'none' || effort === 'minimal') return undefined;
  if (effort !== 'low' && effort !== 'medium' && effort !== 'high' && effort !== 'xhigh')
    refuse("Invalid 'reasoning_effort': expected none, minimal, low, medium or high.", 'reasoning_effort');
  const wanted = options.thinkingBudgets[effort === 'xhigh' ? 'high' : effort];
  if (maxTokens === undefined) return { config: { type: 'enabled', budget_tokens: wanted }, budget: wanted };
  const budget = Math.min(wanted, maxTokens - 1);
  if (budget < 1_024)
    refuse(
      `'max_tokens' (${maxTokens}) leaves no room for thinking: with 'reasoning_effort' it must be above 1024, the smallest thinking budget.`,
      'max_tokens',
    );
  return { config: { type: 'enabled', budget_tokens: budget }, budget };
}

function stopSequences(stop: unknown): string[] | undefined {
  if (typeof stop === 'string') return stop === '' ? undefined : [stop];
  if (Array.isArray(stop)) {
    const sequences = stop.filter((entry): entry is string => typeof entry === 'string' && entry !== '');
    return sequences.length > 0 ? sequences : undefined;
  }
  return undefined;
}

function translateTools(tools: unknown): Json[] {
  if (!Array.isArray(tools)) return [];
  return tools.map((tool, i) => {
    const param = `tools[${i}]`;
    if (!isObject(tool) || tool.type !== 'function' || !isObject(tool.function))
      refuse(`Invalid '${param}': Claude models take function tools only.`, param);
    const fn = tool.function;
    if (typeof fn.name !== 'string' || fn.name === '')
      refuse(`Invalid '${param}.function.name': expected a name.`, `${param}.function.name`);
    const translated: Json = {
      name: fn.name,
      input_schema: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} },
    };
    if (typeof fn.description === 'string') translated.description = fn.description;
    if (fn.strict === true) translated.strict = true;
    return translated;
  });
}

function toolChoice(choice: unknown, parallel: unknown): Json | undefined {
  const serial = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined || choice === null || choice === 'auto')
    return parallel === false ? { type: 'auto', ...serial } : undefined;
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any', ...serial };
  if (isObject(choice) && isObject(choice.function) && typeof choice.function.name === 'string')
    return { type: 'tool', name: choice.function.name, ...serial };
  refuse("Invalid 'tool_choice': expected auto, none, required or a named function.", 'tool_choice');
}

/** Structured outputs: a JSON schema goes to `output_config.format`; JSON mode has no counterpart. */
function outputFormat(format: unknown): Json | undefined {
  if (format === undefined || format === null) return undefined;
  if (!isObject(format)) refuse("Invalid 'response_format'.", 'response_format');
  if (format.type === 'text') return undefined;
  if (format.type === 'json_schema') {
    const spec = format.json_schema;
    if (!isObject(spec) || !isObject(spec.schema))
      refuse(
        "Invalid 'response_format.json_schema.schema': expected a JSON schema object.",
        'response_format',
      );
    return { type: 'json_schema', schema: spec.schema };
  }
  refuse(
    `'response_format' of type '${String(format.type)}' is not supported by Claude models; use 'json_schema' with a schema.`,
    'response_format',
  );
}

/** System and developer messages become `system`; the rest alternate user / assistant turns. */
function translateMessages(messages: unknown): { system: Block[]; turns: Turn[] } {
  if (!Array.isArray(messages) || messages.length === 0)
    refuse("'messages' must be a non-empty array.", 'messages');
  const system: Block[] = [];
  const turns: Turn[] = [];
  const push = (role: Turn['role'], content: Block[]) => {
    if (content.length === 0) return;
    const last = turns.at(-1);
    // The Messages API wants roles to alternate: consecutive turns of one role are one turn.
    // Tool results must open a user turn, so they go before text that follows them.
    if (last && last.role === role) {
      if (role === 'user' && content.some((block) => block.type === 'tool_result')) {
        const results = content.filter((block) => block.type === 'tool_result');
        const rest = content.filter((block) => block.type !== 'tool_result');
        const firstOther = last.content.findIndex((block) => block.type !== 'tool_result');
        const at = firstOther === -1 ? last.content.length : firstOther;
        last.content.splice(at, 0, ...results);
        last.content.push(...rest);
      } else last.content.push(...content);
      return;
    }
    turns.push({ role, content });
  };
  messages.forEach((message, i) => {
    const param = `messages[${i}]`;
    if (!isObject(message)) refuse(`Invalid '${param}': expected an object.`, param);
    switch (message.role) {
      case 'system':
      case 'developer':
        system.push(...textBlocks(message.content, `${param}.content`));
        break;
      case 'user':
        push('user', userBlocks(message.content, `${param}.content`));
        break;
      case 'assistant':
        push('assistant', assistantBlocks(message, param));
        break;
      case 'tool':
        push('user', [toolResult(message, param)]);
        break;
      default:
        refuse(
          `Invalid '${param}.role': Claude models take system, developer, user, assistant and tool messages.`,
          `${param}.role`,
        );
    }
  });
  return { system, turns };
}

/** Text only (system, developer, tool results): a string or text parts. */
function textBlocks(content: unknown, param: string): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content))
    refuse(`Invalid '${param}': expected a string or an array of text parts.`, param);
  return content.flatMap((part, j) => {
    if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string')
      refuse(`Invalid '${param}[${j}]': only text parts are allowed here.`, `${param}[${j}]`);
    return part.text === '' ? [] : [{ type: 'text', text: part.text }];
  });
}

function userBlocks(content: unknown, param: string): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) refuse(`Invalid '${param}': expected a string or an array of parts.`, param);
  return content.flatMap((part, j): Block[] => {
    const partParam = `${param}[${j}]`;
    if (!isObject(part)) refuse(`Invalid '${partParam}': expected an object.`, partParam);
    switch (part.type) {
      case 'text':
        if (typeof part.text !== 'string') refuse(`Invalid '${partParam}.text'.`, `${partParam}.text`);
        return part.text === '' ? [] : [{ type: 'text', text: part.text }];
      case 'image_url':
        return [imageBlock(part.image_url, `${partParam}.image_url`)];
      case 'file':
        return [documentBlock(part.file, `${partParam}.file`)];
    }
    return refuse(
      `Invalid '${partParam}.type': Claude models take text, image_url and file (PDF) parts, not '${String(part.type)}'.`,
      `${partParam}.type`,
    );
  });
}

function imageBlock(image: unknown, param: string): Block {
  const url = isObject(image) ? image.url : undefined;
  if (typeof url !== 'string') refuse(`Invalid '${param}.url': expected a URL.`, `${param}.url`);
  const data = DATA_URL.exec(url);
  if (data) {
    const mediaType = (data[1] ?? '').toLowerCase();
    if (!IMAGE_TYPES.has(mediaType) || !(data[2] ?? '').includes(';base64'))
      refuse(
        `Invalid '${param}.url': Claude models take base64 data URLs of JPEG, PNG, GIF or WebP images.`,
        `${param}.url`,
      );
    return { type: 'image', source: { type: 'base64', media_type: mediaType, data: data[3] ?? '' } };
  }
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  refuse(`Invalid '${param}.url': expected an http(s) URL or a base64 data URL.`, `${param}.url`);
}

/** OpenAI's `file` part with inline `file_data`; Claude reads PDFs as document blocks. */
function documentBlock(file: unknown, param: string): Block {
  const data = isObject(file) && typeof file.file_data === 'string' ? DATA_URL.exec(file.file_data) : null;
  if (!data || (data[1] ?? '').toLowerCase() !== 'application/pdf' || !(data[2] ?? '').includes(';base64'))
    refuse(
      `Invalid '${param}': Claude models take files as inline base64 PDF data URLs in 'file_data' (file ids are not supported).`,
      param,
    );
  return { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: data[3] ?? '' } };
}

function assistantBlocks(message: Json, param: string): Block[] {
  const blocks: Block[] = [];
  // Thinking must come back first for a tool-use turn to continue (LiteLLM's `thinking_blocks`).
  if (Array.isArray(message.thinking_blocks)) {
    for (const block of message.thinking_blocks) {
      if (isObject(block) && (block.type === 'thinking' || block.type === 'redacted_thinking'))
        blocks.push(block);
    }
  }
  const content = message.content;
  if (typeof content === 'string') {
    if (content !== '') blocks.push({ type: 'text', text: content });
  } else if (Array.isArray(content)) {
    content.forEach((part, j) => {
      if (isObject(part) && part.type === 'text' && typeof part.text === 'string') {
        if (part.text !== '') blocks.push({ type: 'text', text: part.text });
      } else if (!(isObject(part) && part.type === 'refusal'))
        refuse(
          `Invalid '${param}.content[${j}]': assistant content takes text parts.`,
          `${param}.content[${j}]`,
        );
    });
  } else if (content !== undefined && content !== null) {
    refuse(`Invalid '${param}.content'.`, `${param}.content`);
  }
  if (Array.isArray(message.tool_calls)) {
    message.tool_calls.forEach((call, j) => {
      const callParam = `${param}.tool_calls[${j}]`;
      if (!isObject(call) || typeof call.id !== 'string' || !isObject(call.function))
        refuse(`Invalid '${callParam}': expected {id, type: 'function', function}.`, callParam);
      const fn = call.function;
      if (typeof fn.name !== 'string')
        refuse(`Invalid '${callParam}.function.name'.`, `${callParam}.function.name`);
      blocks.push({
        type: 'tool_use',
        id: call.id,
        name: fn.name,
        input: toolInput(fn.arguments, callParam),
      });
    });
  }
  return blocks;
}

function toolInput(args: unknown, param: string): Json {
  if (args === undefined || args === null || args === '') return {};
  if (typeof args !== 'string')
    refuse(`Invalid '${param}.function.arguments': expected a JSON string.`, `${param}.function.arguments`);
  let parsed: unknown;
  try {
    parsed = parseKeepingNumbers(args);
  } catch {
    refuse(`Invalid '${param}.function.arguments': not valid JSON.`, `${param}.function.arguments`);
  }
  if (!isObject(parsed))
    refuse(
      `Invalid '${param}.function.arguments': Claude tools take a JSON object.`,
      `${param}.function.arguments`,
    );
  return parsed;
}

function toolResult(message: Json, param: string): Block {
  if (typeof message.tool_call_id !== 'string' || message.tool_call_id === '')
    refuse(
      `Invalid '${param}.tool_call_id': a tool message must name the call it answers.`,
      `${param}.tool_call_id`,
    );
  const content = textBlocks(message.content ?? '', `${param}.content`);
  return { type: 'tool_result', tool_use_id: message.tool_call_id, content };
}
