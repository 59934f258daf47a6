/**
 * Response cache: turns a streamed (SSE) chat or legacy completion into the whole JSON answer the
 * non-streamed endpoint would have returned, so a streamed miss can be stored once and replayed
 * later either as JSON or (see stream-replay.ts) as a stream.
 */
import { splitEvents } from '../backends/sse-splitter.js';
import { eventData } from '../pipeline/usage.js';

/** The endpoints whose streams can be assembled and replayed. */
export type CacheStreamEndpoint = 'chat.completions' | 'completions';

type Json = Record<string, unknown>;

/** Top-level chunk fields that are handled explicitly (everything else is an "extra"). */
const KNOWN_TOP = new Set(['id', 'object', 'created', 'model', 'system_fingerprint', 'service_tier']);
/** Top-level chunk fields that never reach the answer. */
const DROPPED_TOP = new Set(['choices', 'usage', 'obfuscation', 'error']);
/** Choice fields handled explicitly. */
const KNOWN_CHOICE = new Set(['index', 'delta', 'logprobs', 'finish_reason', 'text', 'message']);
/** Delta fields handled explicitly. */
const KNOWN_DELTA = new Set(['role', 'content', 'refusal', 'tool_calls', 'function_call']);

const DONE = /^data: ?\[DONE\]\s*$/m;
/** Some providers name their error events (`event: error`) instead of, or besides, an `error` key. */
const ERROR_EVENT = /^event: ?error\s*$/m;

interface ToolCallState {
  id: string | undefined;
  type: string | undefined;
  name: string;
  arguments: string;
}

interface ChoiceState {
  index: number;
  finishReason: unknown;
  extra: Json;
  /** Chat. */
  role: string | undefined;
  content: string | null;
  refusal: string | null;
  toolCalls: Map<number, ToolCallState>;
  functionCall: { name: string; arguments: string } | undefined;
  messageExtra: Json;
  logprobs: Json | null;
  /** Legacy. */
  text: string;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Concatenates the array fields of `incoming` onto `target`, keeping the first non-array values. */
function mergeLogprobs(target: Json | null, incoming: unknown): Json | null {
  if (!isObject(incoming)) return target;
  const out: Json = target ?? {};
  for (const [key, value] of Object.entries(incoming)) {
    const existing = out[key];
    // Arrays in `out` are always our own copies, so appending in place is safe (and linear).
    if (Array.isArray(value)) {
      if (Array.isArray(existing)) for (const item of value) existing.push(item);
      else out[key] = [...value];
    } else if (!(key in out)) out[key] = value;
  }
  return out;
}

/**
 * Collects the chunks of one streamed chat completion (`chat.completions`) or legacy text
 * completion (`completions`) and builds the equivalent non-streamed answer.
 */
export class StreamAssembler {
  private readonly top: Json = {};
  private seenChunk = false;
  private readonly choices = new Map<number, ChoiceState>();
  private usage: Json | undefined;
  private done = false;
  private errored = false;

  constructor(readonly endpoint: CacheStreamEndpoint) {}

  /**
   * True once `data: [DONE]` was seen, no error event came before or after it, and every choice
   * ended with a finish reason (an answer without one is not what the endpoint would return).
   */
  get complete(): boolean {
    if (!this.done || this.errored || !this.seenChunk || this.choices.size === 0) return false;
    for (const choice of this.choices.values()) if (choice.finishReason === null) return false;
    return true;
  }

  /** Marks the stream finished (for callers that parse events themselves and saw `[DONE]`). */
  markDone(): void {
    this.done = true;
  }

  /** A block of complete SSE events, as SseSplitter.push returns it. */
  addBlock(block: Buffer): void {
    for (const event of splitEvents(block)) {
      const text = event.toString('utf8');
      if (ERROR_EVENT.test(text)) this.errored = true;
      const payload = eventData(event);
      if (payload) this.add(payload);
      else if (DONE.test(text)) this.done = true;
    }
  }

  /** One parsed `data:` payload (a chunk, or an error event). */
  add(payload: Json): void {
    if ('error' in payload && payload.error !== undefined && payload.error !== null) {
      this.errored = true;
      return;
    }
    if (this.errored) return;
    this.seenChunk = true;
    for (const [key, value] of Object.entries(payload)) {
      if (DROPPED_TOP.has(key) || value === undefined) continue;
      if (key === 'object') continue;
      // The first chunk decides; a later chunk only fills what was missing.
      if (!(key in this.top) || (this.top[key] === null && value !== null)) this.top[key] = value;
    }
    if (isObject(payload.usage)) this.usage = payload.usage;
    if (Array.isArray(payload.choices)) {
      for (const choice of payload.choices) if (isObject(choice)) this.addChoice(choice);
    }
  }

  private choice(index: number): ChoiceState {
    let state = this.choices.get(index);
    if (!state) {
      state = {
        index,
        finishReason: null,
        extra: {},
        role: undefined,
        content: null,
        refusal: null,
        toolCalls: new Map(),
        functionCall: undefined,
        messageExtra: {},
        logprobs: null,
        text: '',
      };
      this.choices.set(index, state);
    }
    return state;
  }

  private addChoice(chunk: Json): void {
    const index = typeof chunk.index === 'number' ? chunk.index : 0;
    const state = this.choice(index);
    if (chunk.finish_reason !== undefined && chunk.finish_reason !== null) {
      state.finishReason = chunk.finish_reason;
    }
    state.logprobs = mergeLogprobs(state.logprobs, chunk.logprobs);
    for (const [key, value] of Object.entries(chunk)) {
      if (!KNOWN_CHOICE.has(key) && value !== undefined && value !== null) state.extra[key] = value;
    }
    if (this.endpoint === 'completions') {
      if (typeof chunk.text === 'string') state.text += chunk.text;
      return;
    }
    const delta = chunk.delta;
    if (!isObject(delta)) return;
    if (typeof delta.role === 'string') state.role = delta.role;
    if (typeof delta.content === 'string') state.content = (state.content ?? '') + delta.content;
    if (typeof delta.refusal === 'string') state.refusal = (state.refusal ?? '') + delta.refusal;
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) if (isObject(call)) this.addToolCall(state, call);
    }
    if (isObject(delta.function_call)) {
      const fn = delta.function_call;
      state.functionCall ??= { name: '', arguments: '' };
      if (typeof fn.name === 'string') state.functionCall.name += fn.name;
      if (typeof fn.arguments === 'string') state.functionCall.arguments += fn.arguments;
    }
    for (const [key, value] of Object.entries(delta)) {
      if (!KNOWN_DELTA.has(key) && value !== undefined && value !== null) state.messageExtra[key] = value;
    }
  }

  private addToolCall(state: ChoiceState, call: Json): void {
    const index = typeof call.index === 'number' ? call.index : state.toolCalls.size;
    let tool = state.toolCalls.get(index);
    if (!tool) {
      tool = { id: undefined, type: undefined, name: '', arguments: '' };
      state.toolCalls.set(index, tool);
    }
    if (typeof call.id === 'string' && call.id !== '') tool.id = call.id;
    if (typeof call.type === 'string' && call.type !== '') tool.type = call.type;
    const fn = call.function;
    if (isObject(fn)) {
      if (typeof fn.name === 'string') tool.name += fn.name;
      if (typeof fn.arguments === 'string') tool.arguments += fn.arguments;
    }
  }

  /**
   * The whole JSON answer, as the non-streamed endpoint would have returned it; undefined until
   * the stream is complete (an incomplete or failed stream must never be cached).
   */
  answer(): Json | undefined {
    if (!this.complete) return undefined;
    const { id, created, model, system_fingerprint, service_tier, ...rest } = this.top;
    const extras: Json = {};
    for (const [key, value] of Object.entries(rest)) if (!KNOWN_TOP.has(key)) extras[key] = value;
    const chat = this.endpoint === 'chat.completions';
    const out: Json = {
      id,
      object: chat ? 'chat.completion' : 'text_completion',
      created,
      model,
      ...extras,
    };
    if (system_fingerprint !== undefined) out.system_fingerprint = system_fingerprint;
    if (service_tier !== undefined) out.service_tier = service_tier;
    const sorted = [...this.choices.values()].sort((a, b) => a.index - b.index);
    out.choices = sorted.map((state) => (chat ? chatChoice(state) : legacyChoice(state)));
    if (this.usage) out.usage = this.usage;
    return out;
  }
}

function chatChoice(state: ChoiceState): Json {
  const toolCalls = [...state.toolCalls.entries()]
    .sort(([a], [b]) => a - b)
    .map(([, tool]) => ({
      id: tool.id ?? '',
      type: tool.type ?? 'function',
      function: { name: tool.name, arguments: tool.arguments },
    }));
  // Some providers open every stream with `content: ""`; a non-streamed tool call or refusal
  // answer has `content: null`.
  const content =
    state.content === '' && (toolCalls.length > 0 || state.refusal !== null || state.functionCall)
      ? null
      : state.content;
  const message: Json = {
    role: state.role ?? 'assistant',
    content,
    refusal: state.refusal,
    ...state.messageExtra,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  if (state.functionCall) message.function_call = state.functionCall;
  return {
    index: state.index,
    message,
    logprobs: state.logprobs,
    finish_reason: state.finishReason,
    ...state.extra,
  };
}

function legacyChoice(state: ChoiceState): Json {
  return {
    index: state.index,
    text: state.text,
    logprobs: state.logprobs,
    finish_reason: state.finishReason,
    ...state.extra,
  };
}
