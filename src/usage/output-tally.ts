import { splitEvents } from '../backends/sse-splitter.js';
import { eventData, type TokenUsage } from '../pipeline/usage.js';
import { countTextTokens } from './token-counter.js';

/**
 * Output tokens counted by the gateway itself, for answers whose usage never arrives: a client
 * that left mid-stream (the usage chunk comes last), or an upstream that reports none. Counted
 * with the same tokenizer as prompts, within the same bound on exact counting per answer
 * (token-counter.ts), so near, not exact.
 */

/**
 * SSE kept per stream for counting (usually dropped unread: the usage chunk arrives); past this,
 * the rest is counted from its size, so many long streams at once cannot hold much memory.
 */
const MAX_KEPT_BYTES = 256 * 1024;
/** Roughly what one token of English text weighs in SSE framing when nothing was counted. */
const FALLBACK_BYTES_PER_TOKEN = 40;

type Json = Record<string, unknown>;

const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const obj = (value: unknown): Json => (value !== null && typeof value === 'object' ? (value as Json) : {});

function toolCallText(calls: unknown): string {
  return list(calls)
    .map((call) => {
      const fn = obj(obj(call).function);
      return str(fn.name) + str(fn.arguments);
    })
    .join('');
}

/** What a model generated in one chunk or event of a stream. */
export function generatedTextOfEvent(payload: Json): string {
  let text = '';
  for (const choice of list(payload.choices)) {
    const c = obj(choice);
    const delta = obj(c.delta);
    text += str(c.text); // legacy completions
    text += str(delta.content) + str(delta.refusal) + str(delta.reasoning_content) + str(delta.reasoning);
    text += toolCallText(delta.tool_calls);
  }
  // Responses API: `response.output_text.delta`, `response.function_call_arguments.delta`, ...
  if (typeof payload.type === 'string' && payload.type.endsWith('.delta')) text += str(payload.delta);
  // Anthropic's Messages: text, tool input JSON and thinking, each in its own delta field.
  if (payload.type === 'content_block_delta') {
    const delta = obj(payload.delta);
    text += str(delta.text) + str(delta.partial_json) + str(delta.thinking);
  }
  return text;
}

/** What a model generated in a whole JSON answer (chat, legacy completion or Responses API). */
export function generatedTextOfAnswer(answer: Json): string {
  let text = '';
  for (const choice of list(answer.choices)) {
    const c = obj(choice);
    const message = obj(c.message);
    text += str(c.text);
    text += str(message.content) + str(message.refusal) + str(message.reasoning_content);
    text += toolCallText(message.tool_calls);
  }
  // Anthropic's Messages: a list of content blocks.
  if (answer.type === 'message') {
    for (const block of list(answer.content)) {
      const b = obj(block);
      text += str(b.text) + str(b.thinking);
      if (b.type === 'tool_use') text += str(b.name) + JSON.stringify(b.input ?? {});
    }
  }
  for (const item of list(answer.output)) {
    const o = obj(item);
    text += str(o.arguments);
    for (const part of list(o.content)) text += str(obj(part).text);
  }
  return text;
}

export function completionTokensOfJson(body: Buffer): number {
  try {
    return countTextTokens(generatedTextOfAnswer(obj(JSON.parse(body.toString('utf8')))));
  } catch {
    return 0;
  }
}

/** The SSE relayed to one client, kept (up to a cap) until the stream ends. */
export class StreamTally {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private overflowBytes = 0;

  add(block: Buffer): void {
    if (this.keptBytes + block.length <= MAX_KEPT_BYTES) {
      this.kept.push(block);
      this.keptBytes += block.length;
    } else this.overflowBytes += block.length;
  }

  /** Output tokens in what was relayed; the part past the cap at the counted part's density. */
  completionTokens(): number {
    const texts: string[] = [];
    for (const block of this.kept)
      for (const event of splitEvents(block)) {
        const payload = eventData(event);
        if (payload) texts.push(generatedTextOfEvent(payload));
      }
    // One string: deltas cut mid-word would each count as whole words.
    const counted = countTextTokens(texts.join(''));
    if (this.overflowBytes === 0) return counted;
    const bytesPerToken = counted > 0 ? this.keptBytes / counted : FALLBACK_BYTES_PER_TOKEN;
    return counted + Math.ceil(this.overflowBytes / bytesPerToken);
  }
}

/** A usage object, in the upstream's shape, for figures the gateway counted itself. */
export function estimatedUsage(promptTokens: number, completionTokens: number): TokenUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}
