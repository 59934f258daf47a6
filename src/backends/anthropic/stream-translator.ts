import { UpstreamError } from '../../errors.js';
import { isChargeableUsage } from '../credible-usage.js';
import { SseDataReader } from '../sse-data-reader.js';
import { encodeDone, encodeEvent } from '../sse-encoder.js';
import type { AnthropicErrorInfo } from './anthropic-errors.js';
import { type AnthropicUsage, mergeUsage, toChatUsage } from './anthropic-usage.js';
import { finishReasonOf } from './finish-reason.js';

type Json = Record<string, unknown>;

/** What a content block index of the upstream stream turned out to be. */
type BlockState =
  | { kind: 'text' }
  | { kind: 'tool'; toolIndex: number; sentArguments: boolean }
  | { kind: 'thinking'; text: string; signature: string }
  | { kind: 'other' };

export interface StreamTranslatorOptions {
  /** Chat chunks, or legacy `text_completion` chunks. */
  shape: 'chat' | 'completion';
  created: number;
  /** The client (or the gateway, for accounting) asked for the usage chunk. */
  includeUsage: boolean;
  /** Turns an upstream `error` event into the error to throw. */
  onError: (info: AnthropicErrorInfo) => Error;
}

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Messages API SSE -> Chat Completions (or legacy completions) SSE, as a state machine fed with upstream bytes. The role
 * chunk waits for the first content block, so an `error` event right after `message_start` (an
 * overload) fails the attempt before the client has seen a byte and routing can try elsewhere.
 * Tool calls are numbered in their order of appearance, as OpenAI numbers them; `[DONE]` follows
 * `message_stop`, preceded by the usage chunk when it was asked for.
 */
export class StreamTranslator {
  private readonly reader = new SseDataReader();
  private readonly blocks = new Map<number, BlockState>();
  private id = 'msg_unknown';
  private model = '';
  private usage: AnthropicUsage = {};
  /**
   * A `message_delta` said the output count (cumulative). message_start's own `output_tokens`
   * (1, say) is no count of the answer: a stream whose end never says it has no output count.
   */
  private outputCounted = false;
  private stopReason: unknown = null;
  private roleSent = false;
  private tools = 0;
  private done = false;
  private failure: unknown;

  constructor(private readonly options: StreamTranslatorOptions) {}

  /**
   * Bytes from the upstream -> bytes for the client (possibly none yet). An `error` event throws,
   * unless chunks came before it in the same bytes: those are returned, and the error waits in
   * `takeFailure`, so the client gets what the model wrote before it failed.
   */
  push(chunk: Buffer): string {
    let out = '';
    for (const data of this.reader.push(chunk)) {
      try {
        out += this.onEvent(data);
      } catch (error) {
        if (out === '') throw error;
        this.failure = error;
        break;
      }
    }
    return out;
  }

  /** The failure that followed the chunks the last push returned, once. */
  takeFailure(): unknown {
    const failure = this.failure;
    this.failure = undefined;
    return failure;
  }

  /** The upstream ended: complete only after `message_stop`. */
  end(): string {
    let out = '';
    for (const data of this.reader.end()) out += this.onEvent(data);
    if (!this.done) throw new UpstreamError('The Anthropic upstream ended its stream before message_stop.');
    return out;
  }

  private onEvent(text: string): string {
    const data = parseData(text);
    if (!data || this.done) return '';
    switch (data.type) {
      case 'message_start':
        return this.onMessageStart(data.message);
      case 'content_block_start':
        return this.onBlockStart(data.index, data.content_block);
      case 'content_block_delta':
        return this.onBlockDelta(data.index, data.delta);
      case 'content_block_stop':
        return this.onBlockStop(data.index);
      case 'message_delta':
        if (isObject(data.delta) && data.delta.stop_reason !== undefined)
          this.stopReason = data.delta.stop_reason;
        if (isObject(data.usage)) {
          this.usage = mergeUsage(this.usage, data.usage as AnthropicUsage);
          if (typeof data.usage.output_tokens === 'number') this.outputCounted = true;
        }
        return '';
      case 'message_stop':
        return this.onMessageStop();
      case 'error': {
        const error = isObject(data.error) ? data.error : {};
        throw this.options.onError({
          type: typeof error.type === 'string' ? error.type : undefined,
          message: typeof error.message === 'string' ? error.message : undefined,
        });
      }
      default:
        // `ping`, and event types added later (the API promises to add some): nothing to say.
        return '';
    }
  }

  private onMessageStart(message: unknown): string {
    if (!isObject(message)) return '';
    if (typeof message.id === 'string') this.id = message.id;
    if (typeof message.model === 'string') this.model = message.model;
    if (isObject(message.usage)) this.usage = mergeUsage(this.usage, message.usage as AnthropicUsage);
    return '';
  }

  private onBlockStart(index: unknown, block: unknown): string {
    if (typeof index !== 'number' || !isObject(block)) return '';
    let out = this.role();
    switch (block.type) {
      case 'text':
        this.blocks.set(index, { kind: 'text' });
        if (typeof block.text === 'string' && block.text !== '') out += this.chunk({ content: block.text });
        break;
      case 'tool_use': {
        const toolIndex = this.tools++;
        // Anthropic starts every tool_use with `input: {}` and streams the real input after it:
        // only a non-empty one here is the input itself.
        const input =
          isObject(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : '';
        this.blocks.set(index, { kind: 'tool', toolIndex, sentArguments: input !== '' });
        out += this.chunk({
          tool_calls: [
            {
              index: toolIndex,
              id: String(block.id),
              type: 'function',
              function: { name: String(block.name), arguments: input },
            },
          ],
        });
        break;
      }
      case 'thinking': {
        const text = typeof block.thinking === 'string' ? block.thinking : '';
        this.blocks.set(index, { kind: 'thinking', text, signature: '' });
        if (text !== '') out += this.chunk({ reasoning_content: text });
        break;
      }
      case 'redacted_thinking':
        this.blocks.set(index, { kind: 'other' });
        if (typeof block.data === 'string')
          out += this.chunk({ thinking_blocks: [{ type: 'redacted_thinking', data: block.data }] });
        break;
      default:
        this.blocks.set(index, { kind: 'other' });
    }
    return out;
  }

  private onBlockDelta(index: unknown, delta: unknown): string {
    const state = typeof index === 'number' ? this.blocks.get(index) : undefined;
    if (!state || !isObject(delta)) return '';
    switch (delta.type) {
      case 'text_delta':
        return typeof delta.text === 'string' && delta.text !== '' ? this.chunk({ content: delta.text }) : '';
      case 'input_json_delta':
        if (state.kind !== 'tool' || typeof delta.partial_json !== 'string' || delta.partial_json === '')
          return '';
        state.sentArguments = true;
        return this.chunk({
          tool_calls: [{ index: state.toolIndex, function: { arguments: delta.partial_json } }],
        });
      case 'thinking_delta':
        if (state.kind !== 'thinking' || typeof delta.thinking !== 'string' || delta.thinking === '')
          return '';
        state.text += delta.thinking;
        return this.chunk({ reasoning_content: delta.thinking });
      case 'signature_delta':
        if (state.kind === 'thinking' && typeof delta.signature === 'string')
          state.signature += delta.signature;
        return '';
      default:
        // citations_delta and later kinds: no Chat Completions form.
        return '';
    }
  }

  /**
   * A finished thinking block goes out whole with its signature, for clients that send it back.
   * A tool call that streamed no arguments (a tool without parameters: Anthropic sends one empty
   * `partial_json`) gets `{}`, as OpenAI sends and as the JSON answer says: clients JSON.parse
   * the arguments, and "" is not JSON.
   */
  private onBlockStop(index: unknown): string {
    const state = typeof index === 'number' ? this.blocks.get(index) : undefined;
    if (state?.kind === 'tool' && !state.sentArguments) {
      state.sentArguments = true;
      return this.chunk({ tool_calls: [{ index: state.toolIndex, function: { arguments: '{}' } }] });
    }
    if (state?.kind !== 'thinking') return '';
    return this.chunk({
      thinking_blocks: [{ type: 'thinking', thinking: state.text, signature: state.signature }],
    });
  }

  private onMessageStop(): string {
    this.done = true;
    let out = this.role();
    out += this.chunk({}, finishReasonOf(this.stopReason));
    // Usage that is not counts, or lacks the prompt's count (message_start's, or the end's) or the
    // output's (a message_delta's), is left out: the gateway counts the answer itself, estimated
    // (credible-usage.ts). Sent, toChatUsage made what it lacks a 0 the gateway charged as given.
    if (this.options.includeUsage && this.outputCounted && isChargeableUsage(this.usage, false)) {
      out += encodeEvent({ ...this.base(), choices: [], usage: toChatUsage(this.usage) });
    }
    return out + encodeDone();
  }

  private role(): string {
    if (this.roleSent) return '';
    this.roleSent = true;
    return this.options.shape === 'completion' ? '' : this.chunk({ role: 'assistant', content: '' });
  }

  private base(): Json {
    const object = this.options.shape === 'completion' ? 'text_completion' : 'chat.completion.chunk';
    return { id: this.id, object, created: this.options.created, model: this.model };
  }

  private chunk(delta: Json, finishReason: string | null = null): string {
    if (this.options.shape === 'completion') {
      // Legacy completions carry text only: thinking and tool calls have no place there.
      if (finishReason === null && typeof delta.content !== 'string') return '';
      const text = typeof delta.content === 'string' ? delta.content : '';
      return encodeEvent({
        ...this.base(),
        choices: [{ text, index: 0, logprobs: null, finish_reason: finishReason }],
      });
    }
    return encodeEvent({
      ...this.base(),
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    });
  }
}

/** An event's data as JSON (Anthropic repeats the event name as `type` in it). */
function parseData(text: string): Json | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UpstreamError('The Anthropic upstream sent an event that is not JSON.');
  }
  return isObject(parsed) ? parsed : undefined;
}
