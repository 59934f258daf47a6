import { type AnthropicUsage, mergeUsage, toChatUsage } from '../backends/anthropic/anthropic-usage.js';
import type { JsonEndpoint } from '../backends/backend.js';
import { hasUsageCounts, isChargeableUsage, isCredibleUsage } from '../backends/credible-usage.js';
import { CLOSE_BRACE, OPEN_BRACE, QUOTE, valueStartAfterKey } from './json-bytes.js';

/**
 * ⑦ usage: the token counts an upstream reported, found in a JSON body or an SSE stream.
 * Accounting and recording build on this (quotas and budgets settle with it).
 */
export interface TokenUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  /** Responses API names. */
  input_tokens?: number;
  output_tokens?: number;
  [detail: string]: unknown;
}

const USAGE_KEY = Buffer.from('"usage"');

/**
 * True when the bytes hold `"usage": {` (an object, not the `"usage":null` OpenAI puts on
 * every chunk once usage is requested). A byte scan, so most chunks are never parsed.
 */
export function hasUsageObject(bytes: Buffer): boolean {
  for (let at = bytes.indexOf(USAGE_KEY); at !== -1; at = bytes.indexOf(USAGE_KEY, at + 1)) {
    if (usageObjectStart(bytes, at) !== -1) return true;
  }
  return false;
}

/** Where the object of the `"usage"` key found at `at` opens, or -1 when its value is not an object. */
function usageObjectStart(bytes: Buffer, at: number): number {
  const start = valueStartAfterKey(bytes, at, USAGE_KEY);
  return start !== -1 && bytes[start] === OPEN_BRACE ? start : -1;
}

/** Every token an answer used (prompt and output), when its usage says; what provider limits count. */
export function tokensOf(usage: TokenUsage | undefined): number | undefined {
  if (!usage) return undefined;
  const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
  const total = count(usage.total_tokens);
  if (total !== undefined) return total;
  const input = count(usage.prompt_tokens) ?? count(usage.input_tokens);
  const output = count(usage.completion_tokens) ?? count(usage.output_tokens);
  return input === undefined && output === undefined ? undefined : (input ?? 0) + (output ?? 0);
}

/** The JSON of an SSE event's data lines, or undefined if there is none or it is not JSON. */
export function eventData(event: Buffer): Record<string, unknown> | undefined {
  const lines = event.toString('utf8').split(/\r?\n/);
  const data = lines
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
    .join('\n');
  if (!data || data === '[DONE]') return undefined;
  try {
    const parsed: unknown = JSON.parse(data);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Chat/legacy chunks carry `usage`; Responses API events carry `response.usage`. Usage that is not
 * made of counts, or lacks one the endpoint's answer must have, reads as none (credible below).
 */
export function usageOf(payload: Record<string, unknown>, endpoint?: JsonEndpoint): TokenUsage | undefined {
  const direct = payload.usage;
  if (direct !== null && typeof direct === 'object') return credible(direct, endpoint);
  const nested = (payload.response as { usage?: unknown } | undefined)?.usage;
  if (nested !== null && typeof nested === 'object') return credible(nested, endpoint);
  return undefined;
}

/**
 * The usage as the gateway may charge it, or undefined (then it counts the answer itself, marked
 * estimated): counts only (isCredibleUsage), with a prompt count whatever the endpoint (every
 * usage object of OpenAI's and Anthropic's APIs has one), and an output count for an answer the
 * model generated. A `completion_tokens: 0` is an answer that said nothing; one that is missing
 * says nothing about the answer, which the gateway can count. Embeddings have no output count.
 */
function credible(usage: object, endpoint: JsonEndpoint | undefined): TokenUsage | undefined {
  return isChargeableUsage(usage, generates(endpoint)) ? (usage as TokenUsage) : undefined;
}

/** Endpoints whose answers the model generated: their usage must count the output. */
function generates(endpoint: JsonEndpoint | undefined): boolean {
  return (
    endpoint === 'chat.completions' ||
    endpoint === 'completions' ||
    endpoint === 'responses' ||
    endpoint === 'messages'
  );
}

/**
 * The top-level `usage` object of a JSON answer, parsed alone: the body itself is relayed as
 * bytes and never parsed whole on this path. Returns undefined when there is none. Without an
 * `endpoint` (an embeddings answer), only the prompt count is required of it.
 */
export function usageFromJson(body: Buffer, endpoint?: JsonEndpoint): TokenUsage | undefined {
  // Top-level usage comes last in OpenAI's bodies, so search from the end.
  for (
    let at = body.lastIndexOf(USAGE_KEY);
    at !== -1;
    at = at === 0 ? -1 : body.lastIndexOf(USAGE_KEY, at - 1)
  ) {
    const start = usageObjectStart(body, at);
    if (start === -1) continue;
    const end = matchingBrace(body, start);
    if (end === -1) return undefined;
    try {
      const usage: unknown = JSON.parse(body.subarray(start, end + 1).toString('utf8'));
      return usage !== null && typeof usage === 'object' ? credible(usage, endpoint) : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const BACKSLASH = 0x5c;

/** Index of the brace closing the object that opens at `start`, skipping strings. */
function matchingBrace(bytes: Buffer, start: number): number {
  let depth = 0;
  for (let i = start; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === QUOTE) {
      for (i++; i < bytes.length && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
    } else if (byte === OPEN_BRACE) depth++;
    else if (byte === CLOSE_BRACE && --depth === 0) return i;
  }
  return -1;
}

/** The usage of a whole JSON answer, in OpenAI's names whatever the endpoint's own. */
export function usageOfAnswer(endpoint: JsonEndpoint, body: Buffer): TokenUsage | undefined {
  const usage = usageFromJson(body, endpoint);
  return endpoint === 'messages' && usage ? { ...toChatUsage(usage as AnthropicUsage) } : usage;
}

/**
 * Reads one stream's usage as its events pass, in OpenAI's names. Chat and legacy chunks carry
 * it whole on their last chunk, Responses events on `response.completed`; Anthropic's Messages
 * streams in two parts: the prompt (with cache reads and writes) on `message_start`, the output
 * (cumulative, sometimes the prompt again) on `message_delta`, merged here.
 */
export class StreamUsage {
  private anthropic: AnthropicUsage | undefined;
  /** A part of this stream's usage was not counts: none of it is taken (the gateway counts). */
  private incredible = false;
  /** False while only a first part has arrived (Anthropic's `message_start`). */
  final = false;

  constructor(private readonly endpoint: JsonEndpoint) {}

  read(payload: Record<string, unknown>): TokenUsage | undefined {
    if (this.endpoint !== 'messages') {
      const usage = usageOf(payload, this.endpoint);
      if (usage) this.final = true;
      return usage;
    }
    const part =
      payload.type === 'message_start'
        ? (payload.message as { usage?: unknown } | undefined)?.usage
        : payload.type === 'message_delta'
          ? payload.usage
          : undefined;
    if (this.incredible || part === null || typeof part !== 'object') return undefined;
    const last = payload.type === 'message_delta';
    // The last part says the output (cumulative): one without it leaves the output unsaid.
    if (!isCredibleUsage(part) || (last && typeof (part as AnthropicUsage).output_tokens !== 'number')) {
      this.incredible = true;
      this.anthropic = undefined;
      return undefined;
    }
    if (last) this.final = true;
    this.anthropic = mergeUsage(this.anthropic ?? {}, part as AnthropicUsage);
    // No prompt count in any part yet (message_start names it; newer APIs repeat it at the end).
    if (!hasUsageCounts(this.anthropic, false)) return undefined;
    return { ...toChatUsage(this.anthropic) };
  }

  /** The usage read so far with the output replaced by a count (a stream cut before its end). */
  withOutput(outputTokens: number): TokenUsage | undefined {
    if (!this.anthropic || this.incredible) return undefined;
    const reported = typeof this.anthropic.output_tokens === 'number' ? this.anthropic.output_tokens : 0;
    return { ...toChatUsage({ ...this.anthropic, output_tokens: Math.max(reported, outputTokens) }) };
  }
}
