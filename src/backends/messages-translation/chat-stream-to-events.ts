import { UpstreamError } from '../../errors.js';
import { type Json, listOf, objectOf, stringOf } from '../../json-values.js';
import { GeneratedTextCount } from '../../usage/generated-text-count.js';
import { encodeEvent } from '../sse-encoder.js';
import { type AnswerContext, reasoningOf, textOfChatContent } from './chat-to-message.js';
import { inBandErrorType } from './in-band-error-type.js';
import { messageIdOf, toolUseIdOf } from './message-ids.js';
import { countedUsage, messagesUsageOf } from './messages-usage.js';
import { stopOf } from './stop-reason.js';
import { toolInputOf } from './tool-input.js';

type OpenBlock =
  | { kind: 'text' | 'thinking'; index: number }
  | { kind: 'tool'; index: number; chatIndex: number; id: string; name: string; args: string };

/**
 * A chat completions stream, chunk by chunk, as Anthropic's stream events in Anthropic's order:
 * `message_start`, then per content block `content_block_start`, its deltas and
 * `content_block_stop` (indices 0, 1, 2... one block open at a time: a run of reasoning is a
 * thinking block, a run of text a text block, each tool call a tool_use block), then
 * `message_delta` (stop_reason, stop_sequence and the whole usage) and `message_stop`.
 *
 * Usage: a chat stream reports it only at its end (asked for with include_usage), so
 * `message_start` carries the gateway's own count of the prompt as `input_tokens` (an estimate,
 * output 0, cache 0) and `message_delta` carries the exact figures the upstream reported:
 * input_tokens, output_tokens, cache_read_input_tokens and cache_creation_input_tokens. The
 * Anthropic SDK's final message takes every one of these from `message_delta` over
 * `message_start` (MessageStream: non-null fields overwrite). An upstream that reports no usage
 * leaves the estimate, and output tokens counted by the gateway, in `message_delta`.
 *
 * A tool call's arguments are held until the call ends and sent as one `input_json_delta`:
 * validated first, so arguments the model broke become `{}` (tool-input.ts) instead of JSON the
 * client's parser throws on. Text and reasoning are relayed as they come.
 */
export class ChatStreamTranslator {
  private started = false;
  private ended = false;
  private nextIndex = 0;
  private open: OpenBlock | undefined;
  private finishReason: unknown;
  private matchedStop: unknown;
  private usage: unknown;
  private calledTools = false;
  private refused = false;
  private saidText = false;
  private inputEstimate: number | undefined;
  /** What the model generated, for an upstream that never reports usage. */
  private readonly generated = new GeneratedTextCount();

  constructor(private readonly context: AnswerContext) {}

  /** One chat chunk: the Anthropic events it makes, as SSE text (often empty). */
  chunk(chunk: Json): string {
    if (this.ended) return '';
    const error = chunk.error;
    if (error !== null && typeof error === 'object' && !Array.isArray(error)) return this.fail(error as Json);
    let out = this.start(chunk);
    const choice = objectOf(listOf(chunk.choices)[0]);
    const delta = objectOf(choice.delta);
    const thinking = reasoningOf(delta);
    if (thinking) out += this.appendText('thinking', thinking);
    const text = textOfChatContent(delta.content);
    if (text) {
      this.saidText = true;
      out += this.appendText('text', text);
    }
    const refusal = stringOf(delta.refusal);
    if (refusal) {
      this.refused = true;
      out += this.appendText('text', refusal);
    }
    for (const call of listOf(delta.tool_calls)) out += this.toolCall(objectOf(call));
    // Some servers send `finish_reason: ""` on every chunk: only a reason is the end.
    if (typeof choice.finish_reason === 'string' && choice.finish_reason !== '')
      this.finishReason = choice.finish_reason;
    if (choice.stop_reason !== undefined && choice.stop_reason !== null)
      this.matchedStop = choice.stop_reason;
    if (chunk.usage !== null && typeof chunk.usage === 'object') this.usage = chunk.usage;
    return out;
  }

  /**
   * The upstream's stream stopped. Whole when it said it was over, by `[DONE]` (`sawDone`) or a
   * finish_reason (some servers send no `[DONE]` after it): then `end()`. Otherwise the answer
   * was cut short, however cleanly the connection closed, and this throws, so that the relay
   * ends the stream with an `error` event and records it failed (or, before any event, the
   * attempt fails), as the Anthropic backend does for a stream without `message_stop`.
   */
  endOfStream(sawDone: boolean): string {
    if (this.ended || sawDone || this.finishReason !== undefined) return this.end();
    this.ended = true;
    throw new UpstreamError('The upstream ended its stream before its finish_reason.');
  }

  /** The answer ended: the open block closes, then `message_delta` and `message_stop`. */
  end(): string {
    if (this.ended) return '';
    let out = this.start({});
    out += this.close();
    this.ended = true;
    const stop = stopOf(
      { finish_reason: this.finishReason, stop_reason: this.matchedStop },
      {
        calledTools: this.calledTools,
        onlyRefused: this.refused && !this.saidText,
        stopSequences: this.context.stopSequences,
      },
    );
    const reported = messagesUsageOf(this.usage);
    if (!reported) this.context.counted.usage = true;
    const usage = reported ?? countedUsage(this.estimate(), this.generated.tokens());
    out += event({
      type: 'message_delta',
      delta: { stop_reason: stop.stop_reason, stop_sequence: stop.stop_sequence },
      usage,
    });
    out += event({ type: 'message_stop' });
    return out;
  }

  private estimate(): number {
    this.inputEstimate ??= this.context.countInputTokens();
    return this.inputEstimate;
  }

  private start(chunk: Json): string {
    if (this.started) return '';
    this.started = true;
    const model = stringOf(chunk.model) || this.context.model;
    return event({
      type: 'message_start',
      message: {
        id: messageIdOf(chunk.id),
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: countedUsage(this.estimate(), 0),
      },
    });
  }

  /**
   * An error chunk (`data: {"error":{...}}`) as Anthropic's `error` event, and the end. As the
   * first event it is what the gateway reads ahead to fail the attempt with that status.
   */
  private fail(error: Json): string {
    this.ended = true;
    const message = stringOf(error.message) || 'The upstream failed mid-stream.';
    return encodeEvent({ type: 'error', error: { type: inBandErrorType(error), message } }, 'error');
  }

  private appendText(kind: 'text' | 'thinking', text: string): string {
    let out = '';
    if (this.open?.kind !== kind) {
      out += this.close();
      const index = this.nextIndex++;
      this.open = { kind, index };
      const block =
        kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
      out += event({ type: 'content_block_start', index, content_block: block });
    }
    this.generated.add(text);
    const delta = kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text };
    return out + event({ type: 'content_block_delta', index: this.open?.index ?? 0, delta });
  }

  private toolCall(call: Json): string {
    this.calledTools = true;
    const fn = objectOf(call.function);
    const open = this.open;
    const chatIndex =
      typeof call.index === 'number' ? call.index : open?.kind === 'tool' ? open.chatIndex : 0;
    const newId =
      typeof call.id === 'string' && call.id !== '' && open?.kind === 'tool' && call.id !== open.id;
    this.generated.add(stringOf(fn.name) + stringOf(fn.arguments));
    if (open?.kind === 'tool' && open.chatIndex === chatIndex && !newId) {
      open.args += stringOf(fn.arguments);
      if (open.name === '') open.name = stringOf(fn.name);
      return '';
    }
    const out = this.close();
    this.open = {
      kind: 'tool',
      index: this.nextIndex++,
      chatIndex,
      id: toolUseIdOf(call.id),
      name: stringOf(fn.name),
      args: stringOf(fn.arguments),
    };
    return out;
  }

  /** Closes the open block; a tool call is written whole here (start, its input, stop). */
  private close(): string {
    const open = this.open;
    if (!open) return '';
    this.open = undefined;
    let out = '';
    if (open.kind === 'tool') {
      out += event({
        type: 'content_block_start',
        index: open.index,
        content_block: { type: 'tool_use', id: open.id, name: open.name, input: {} },
      });
      out += event({
        type: 'content_block_delta',
        index: open.index,
        delta: { type: 'input_json_delta', partial_json: toolInputOf(open.args).json },
      });
    }
    return out + event({ type: 'content_block_stop', index: open.index });
  }
}

/** Anthropic names every event after its `type`; the SDK's reader skips unnamed ones. */
function event(payload: Json & { type: string }): string {
  return encodeEvent(payload, payload.type);
}
