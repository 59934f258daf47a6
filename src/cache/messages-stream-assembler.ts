/**
 * Response cache: turns a streamed Anthropic Messages answer (`POST /v1/messages`, SSE) into the
 * Message JSON the non-streamed request would have returned, so a streamed miss can be stored
 * once and replayed later either as JSON or (see messages-stream-replay.ts) as a stream. The
 * Messages twin of stream-assembler.ts, with the same public API.
 */
import { type AnthropicUsage, mergeUsage } from '../backends/anthropic/anthropic-usage.js';
import { splitEvents } from '../backends/sse-splitter.js';
import { parseKeepingNumbers } from '../json-numbers.js';
import { isObject, type Json } from '../json-values.js';
import { eventData } from '../pipeline/usage.js';

/** Anthropic names its error events; the payload says `"type":"error"` as well. */
const ERROR_EVENT = /^event: ?error\s*$/m;

interface BlockState {
  /** The block as `content_block_start` gave it, with every delta folded in. */
  content: Json;
  /** The concatenated `input_json_delta` pieces; undefined when none came. */
  json: string | undefined;
  stopped: boolean;
}

/**
 * Collects the events of one streamed Messages answer and builds the equivalent Message.
 *
 * Deltas fold in the way the Anthropic SDK's MessageStream folds them (text and thinking
 * appended, citations appended to the start block's list, the signature replaced, tool input
 * parsed from the concatenated partial JSON), so a stored answer is what a streaming client of
 * the real API ended up holding, and what a non-streamed request returns.
 */
export class MessagesStreamAssembler {
  /** Lets a caller holding either assembler tell them apart (StreamAssembler has one too). */
  readonly endpoint = 'messages' as const;
  /** `message_start`'s message; content and usage are rebuilt apart. */
  private start: Json | undefined;
  /** `message_delta`'s delta fields (stop_reason, stop_sequence, stop_details, container...). */
  private readonly delta: Json = {};
  private usage: AnthropicUsage = {};
  private readonly blocks = new Map<number, BlockState>();
  private stopped = false;
  private errored = false;
  /**
   * The stream broke Anthropic's grammar (a second message_start, a delta for a block never
   * started or already stopped, a delta kind we cannot fold, tool input that is not a JSON
   * object): whatever we built may differ from the real answer, so it must not be stored.
   */
  private malformed = false;

  /**
   * True once `message_start` and `message_stop` were both seen, no error event came before or
   * after them, every started block was stopped (blocks numbered 0, 1, 2... without a gap: a gap
   * is a block we never saw), every tool input parsed, and the answer has a stop reason.
   */
  get complete(): boolean {
    if (!this.start || !this.stopped || this.errored || this.malformed) return false;
    if (this.stopReason() === null) return false;
    for (let index = 0; index < this.blocks.size; index++) {
      const block = this.blocks.get(index);
      if (!block?.stopped) return false;
    }
    return true;
  }

  /** Marks the stream finished (for callers that parse events themselves and saw `message_stop`). */
  markDone(): void {
    this.stopped = true;
  }

  /** A block of complete SSE events, as SseSplitter.push returns it. */
  addBlock(block: Buffer): void {
    for (const event of splitEvents(block)) {
      // Only the name line is tested: a payload never holds a raw newline, so `event: error`
      // cannot match inside generated text.
      if (ERROR_EVENT.test(event.toString('utf8'))) this.errored = true;
      const payload = eventData(event);
      if (payload) this.add(payload);
    }
  }

  /** One parsed `data:` payload (its `type` says which event it is). */
  add(payload: Json): void {
    if (payload.type === 'error' || (payload.error !== undefined && payload.error !== null)) {
      this.errored = true;
      return;
    }
    if (this.errored) return;
    switch (payload.type) {
      case 'message_start':
        this.onMessageStart(payload.message);
        break;
      case 'content_block_start':
        this.onBlockStart(payload.index, payload.content_block);
        break;
      case 'content_block_delta':
        this.onBlockDelta(payload.index, payload.delta);
        break;
      case 'content_block_stop':
        this.onBlockStop(payload.index);
        break;
      case 'message_delta':
        this.onMessageDelta(payload.delta, payload.usage);
        break;
      case 'message_stop':
        this.stopped = true;
        break;
      default:
        // `ping`, and event types added later (the API promises to add some): nothing to keep.
        break;
    }
  }

  private onMessageStart(message: unknown): void {
    if (this.start || !isObject(message)) {
      this.malformed = true;
      return;
    }
    this.start = message;
    if (isObject(message.usage)) this.usage = mergeUsage(this.usage, message.usage as AnthropicUsage);
  }

  private onBlockStart(index: unknown, block: unknown): void {
    if (!isIndex(index) || !isObject(block) || this.blocks.has(index)) {
      this.malformed = true;
      return;
    }
    // A copy: the deltas change it, and the caller's payload must stay as it came.
    this.blocks.set(index, { content: { ...block }, json: undefined, stopped: false });
  }

  private onBlockDelta(index: unknown, delta: unknown): void {
    const block = isIndex(index) ? this.blocks.get(index) : undefined;
    if (!block || block.stopped || !isObject(delta)) {
      this.malformed = true;
      return;
    }
    const content = block.content;
    switch (delta.type) {
      case 'text_delta':
        content.text = stringOr(content.text) + stringOr(delta.text);
        return;
      case 'citations_delta':
        content.citations = [...(Array.isArray(content.citations) ? content.citations : []), delta.citation];
        return;
      case 'input_json_delta':
        block.json = (block.json ?? '') + stringOr(delta.partial_json);
        return;
      case 'thinking_delta':
        content.thinking = stringOr(content.thinking) + stringOr(delta.thinking);
        return;
      case 'signature_delta':
        // Anthropic sends the whole signature in one delta; the SDK keeps the last one.
        content.signature = stringOr(delta.signature);
        return;
      default:
        // A delta kind added after this was written: folding it wrongly would store an answer
        // the API never gave, so this answer is not stored at all.
        this.malformed = true;
    }
  }

  private onBlockStop(index: unknown): void {
    const block = isIndex(index) ? this.blocks.get(index) : undefined;
    if (!block || block.stopped) {
      this.malformed = true;
      return;
    }
    block.stopped = true;
    // Parsed once, here: the input is whole now, and `complete` must know whether it parses.
    if (block.json === undefined) return;
    const input = parseInput(block.json);
    if (input === undefined) this.malformed = true;
    else block.content.input = input;
  }

  private onMessageDelta(delta: unknown, usage: unknown): void {
    if (isObject(delta)) {
      // Later non-null values win, as in usage: the start's nulls are placeholders.
      for (const [key, value] of Object.entries(delta))
        if (value !== undefined && (value !== null || !(key in this.delta))) this.delta[key] = value;
    }
    // output_tokens here is the running total, not an increment: merging (not adding) is right.
    if (isObject(usage)) this.usage = mergeUsage(this.usage, usage as AnthropicUsage);
  }

  private stopReason(): unknown {
    return this.delta.stop_reason ?? this.start?.stop_reason ?? null;
  }

  /**
   * The whole Message, as the non-streamed request would have returned it; undefined until the
   * stream is complete (an incomplete or failed stream must never be cached).
   */
  answer(): Json | undefined {
    if (!this.complete || !this.start) return undefined;
    // Spreading the start keeps Anthropic's field order (id, type, role, model, content, ...).
    const out: Json = { ...this.start, type: 'message', role: this.start.role ?? 'assistant' };
    // Copies: the answer is stored and may be handed on, while this assembler stays readable.
    out.content = [...this.blocks.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, block]) => ({ ...block.content }));
    out.stop_reason = this.start.stop_reason ?? null;
    out.stop_sequence = this.start.stop_sequence ?? null;
    for (const [key, value] of Object.entries(this.delta)) {
      if (value !== null || out[key] === undefined) out[key] = value;
    }
    out.usage = { ...this.usage };
    return out;
  }
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function stringOr(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/**
 * The tool input a whole `partial_json` run amounts to: `{}` for none, undefined when broken. Its
 * numbers JavaScript cannot hold (an id past 2^53) stay as the model wrote them, as they do in the
 * answer the client got while it streamed.
 */
function parseInput(json: string): Json | undefined {
  if (json.trim() === '') return {};
  try {
    const parsed: unknown = parseKeepingNumbers(json);
    // Tool input is always an object; anything else is not what the API would have returned.
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
