/**
 * Response cache: replays a stored whole answer (chat or legacy completion) either as JSON or as
 * the SSE stream the official SDKs expect. The output depends only on the answer and options.
 */
import { encodeDone, encodeEvent } from '../backends/sse-encoder.js';
import type { CacheStreamEndpoint } from './stream-assembler.js';

type Json = Record<string, unknown>;

export interface ReplayOptions {
  /** The request asked for `stream_options.include_usage`. */
  includeUsage: boolean;
}

/** Pieces of content are cut near this many UTF-16 units, preferably after a space. */
const PIECE_MIN = 20;
const PIECE_TARGET = 32;
const PIECE_MAX = 40;
/** Tool-call arguments are JSON nobody reads incrementally: bigger pieces. */
const ARGUMENT_PIECE = 128;

/** Answer fields rebuilt explicitly on every chunk (everything else at top level is copied as is). */
const TOP_FIELDS = new Set([
  'id',
  'object',
  'created',
  'model',
  'system_fingerprint',
  'service_tier',
  'choices',
  'usage',
]);
const CHOICE_FIELDS = new Set(['index', 'message', 'logprobs', 'finish_reason', 'text']);
const MESSAGE_FIELDS = new Set(['role', 'content', 'refusal', 'tool_calls', 'function_call']);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Cuts text into pieces of roughly PIECE_TARGET units, after a space where one is near, and
 * never between the two halves of a surrogate pair.
 */
export function splitText(text: string, target = PIECE_TARGET): string[] {
  const pieces: string[] = [];
  const min = target === PIECE_TARGET ? PIECE_MIN : Math.floor(target * 0.75);
  const max = target === PIECE_TARGET ? PIECE_MAX : Math.ceil(target * 1.25);
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + target);
    if (end < text.length) {
      const space = text.slice(start + min, start + max).search(/\s/);
      if (space !== -1) end = start + min + space + 1;
      if (isHighSurrogate(text.charCodeAt(end - 1))) end += 1;
    }
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/** The answer as the JSON body of a non-streamed response. */
export function replayAsJson(answer: Json): Buffer {
  return Buffer.from(JSON.stringify(answer), 'utf8');
}

/** The whole SSE body (ending with `data: [DONE]`) of a streamed response equal to `answer`. */
export function replayAsStream(answer: Json, endpoint: CacheStreamEndpoint, options: ReplayOptions): Buffer {
  const chat = endpoint === 'chat.completions';
  const base: Json = {
    id: answer.id,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: answer.created,
    model: answer.model,
  };
  if (answer.service_tier !== undefined) base.service_tier = answer.service_tier;
  if (answer.system_fingerprint !== undefined) base.system_fingerprint = answer.system_fingerprint;
  for (const [key, value] of Object.entries(answer)) {
    if (!TOP_FIELDS.has(key) && value !== undefined) base[key] = value;
  }
  // OpenAI sends `usage: null` on every chat chunk once usage is asked for; the legacy chunk
  // schema has a non-nullable usage, so legacy chunks carry none.
  const usageField: Json = chat && options.includeUsage ? { usage: null } : {};
  const choices = (Array.isArray(answer.choices) ? answer.choices : [])
    .filter(isObject)
    .map((choice, position) => ({
      choice,
      index: typeof choice.index === 'number' ? choice.index : position,
    }))
    .sort((a, b) => a.index - b.index);

  const out: string[] = [];
  for (const { choice, index } of choices) {
    const chunkChoices = chat ? chatChoiceChunks(choice, index) : legacyChoiceChunks(choice, index);
    for (const chunkChoice of chunkChoices)
      out.push(encodeEvent({ ...base, choices: [chunkChoice], ...usageField }));
  }
  if (options.includeUsage && isObject(answer.usage)) {
    out.push(encodeEvent({ ...base, choices: [], usage: answer.usage }));
  }
  out.push(encodeDone());
  return Buffer.from(out.join(''), 'utf8');
}

function choiceExtras(choice: Json): Json {
  const extras: Json = {};
  for (const [key, value] of Object.entries(choice)) {
    if (!CHOICE_FIELDS.has(key) && value !== undefined) extras[key] = value;
  }
  return extras;
}

function chatChoiceChunks(choice: Json, index: number): Json[] {
  const message = isObject(choice.message) ? choice.message : {};
  const content = typeof message.content === 'string' ? message.content : null;
  const refusal = typeof message.refusal === 'string' ? message.refusal : null;
  const deltas: Json[] = [];

  const first: Json = { role: typeof message.role === 'string' ? message.role : 'assistant', content: '' };
  if (content === null) first.content = null;
  for (const [key, value] of Object.entries(message)) {
    if (!MESSAGE_FIELDS.has(key) && value !== undefined) first[key] = value;
  }
  deltas.push(first);
  if (content) for (const piece of splitText(content)) deltas.push({ content: piece });
  if (refusal !== null)
    for (const piece of refusal ? splitText(refusal) : ['']) deltas.push({ refusal: piece });

  const toolCalls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isObject) : [];
  toolCalls.forEach((call, i) => {
    const fn = isObject(call.function) ? call.function : {};
    const args = typeof fn.arguments === 'string' ? fn.arguments : '';
    const { id, type, function: _fn, ...callRest } = call;
    deltas.push({
      tool_calls: [
        {
          index: i,
          id,
          type: type ?? 'function',
          ...callRest,
          function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: '' },
        },
      ],
    });
    for (const piece of splitText(args, ARGUMENT_PIECE)) {
      deltas.push({ tool_calls: [{ index: i, function: { arguments: piece } }] });
    }
  });
  if (isObject(message.function_call)) deltas.push({ function_call: message.function_call });

  const chunks: Json[] = deltas.map((delta) => ({ index, delta, logprobs: null, finish_reason: null }));
  // All log probabilities travel on the first chunk after the role chunk (clients concatenate).
  const logprobs = isObject(choice.logprobs) ? choice.logprobs : null;
  const finish: Json = {
    index,
    delta: {},
    logprobs: null,
    finish_reason: choice.finish_reason ?? null,
    ...choiceExtras(choice),
  };
  chunks.push(finish);
  const carrier = chunks[1];
  if (logprobs && carrier) carrier.logprobs = logprobs;
  return chunks;
}

function legacyChoiceChunks(choice: Json, index: number): Json[] {
  const text = typeof choice.text === 'string' ? choice.text : '';
  const logprobs = isObject(choice.logprobs) ? choice.logprobs : null;
  const chunks: Json[] = (text ? splitText(text) : []).map((piece) => ({
    index,
    text: piece,
    logprobs: null,
    finish_reason: null,
  }));
  chunks.push({
    index,
    text: '',
    logprobs: null,
    finish_reason: choice.finish_reason ?? null,
    ...choiceExtras(choice),
  });
  const carrier = chunks[0];
  if (logprobs && carrier) carrier.logprobs = logprobs;
  return chunks;
}
