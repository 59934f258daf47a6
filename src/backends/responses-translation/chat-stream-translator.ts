import { isObject, type Json } from '../../json-values.js';
import type { ChatParamPaths } from './chat-param-paths.js';
import {
  functionCallItem,
  type ItemStatus,
  incompleteReasonOf,
  messageItem,
  newId,
  nowSeconds,
  outputText,
  type Reasoning,
  type ResponseState,
  reasoningItem,
  reasoningOfThinkingBlock,
  responseObject,
  responseUsage,
} from './response-object.js';
import { responsesErrorObject } from './translated-errors.js';
import type { UsageCount } from './usage-count.js';

/**
 * The state machine that turns chat completion chunks into the Responses API's named events:
 * `response.created`, `response.in_progress`, then per output item `output_item.added`, its
 * deltas and its `.done` events, then `response.completed` (or `.incomplete`, `.failed`). Each
 * event carries its `sequence_number`. Only the first choice is read: the Responses API has no `n`.
 *
 * Output items open in the order the chunks reveal them (text, then each tool call by its chat
 * `index`); a text message is closed when a tool call starts after it, tool calls stay open (their
 * arguments may interleave) until the stream ends.
 */

export interface ResponsesEvent {
  type: string;
  data: Json;
}

/** One content part of a message: its text, or what the model refused with. */
interface Part {
  type: 'output_text' | 'refusal';
  text: string;
}

interface MessageItem {
  kind: 'message';
  id: string;
  outputIndex: number;
  /** In the order they opened; a part's index here is its `content_index`. */
  parts: Part[];
  open: boolean;
}

interface CallItem {
  kind: 'call';
  id: string;
  /** Assigned when the item is announced (its name known), so indexes follow announcement order. */
  outputIndex: number;
  callId: string;
  name: string;
  arguments: string;
  /** Arguments that came before the name, held until the item can be announced. */
  held: string;
  announced: boolean;
  open: boolean;
}

/** Claude's thinking, announced and finished at once when its signed block comes whole. */
interface ReasoningItem {
  kind: 'reasoning';
  id: string;
  outputIndex: number;
  reasoning: Reasoning;
  open: false;
}

type Item = MessageItem | CallItem | ReasoningItem;

function contentPart(part: Part): Json {
  return part.type === 'refusal' ? { type: 'refusal', refusal: part.text } : outputText(part.text);
}

export class ChatStreamTranslator {
  private sequence = 0;
  private started = false;
  private readonly id = newId('resp_');
  private createdAt = nowSeconds();
  private model: string;
  /** In output_index order: an item is added when it is announced. */
  private readonly items: Item[] = [];
  private message: MessageItem | undefined;
  /** Tool calls by their chat `index`. */
  private readonly calls = new Map<number, CallItem>();
  private finishReason: unknown;
  private sawDone = false;
  private usage: Json | undefined;
  private out: ResponsesEvent[] = [];
  /** The item the model was generating when the answer was cut short (finish_reason length). */
  private cut: Item | undefined;

  constructor(
    private readonly body: Json,
    model: string,
    private readonly count: UsageCount,
    /** Where the chat request's parameters came from: an error event names the client's. */
    private readonly paths?: ChatParamPaths,
  ) {
    this.model = model;
  }

  get hasStarted(): boolean {
    return this.started;
  }

  /**
   * The chat stream said it was over: a finish_reason (some servers send no `[DONE]` after it)
   * or `[DONE]`. A stream that stops without either was cut off, however cleanly it closed.
   */
  get saidItEnded(): boolean {
    return this.sawDone || this.finishReason !== undefined;
  }

  /** The chat stream's `[DONE]` came. */
  done(): void {
    this.sawDone = true;
  }

  /** The events one chat chunk (already parsed, not an error) gives. */
  chunk(payload: Json): ResponsesEvent[] {
    this.start(payload);
    // Usage without both counts, or not counts, is none (responseUsage): the count at the end
    // stands in for it, as for a stream that sent none. An earlier whole one stays, as on chat.
    const usage = responseUsage(payload.usage);
    if (usage) this.usage = usage;
    const choices = Array.isArray(payload.choices) ? payload.choices : [];
    const choice = choices.find((c) => isObject(c) && (c.index ?? 0) === 0);
    if (isObject(choice)) {
      const delta = isObject(choice.delta) ? choice.delta : {};
      if (Array.isArray(delta.thinking_blocks))
        for (const block of delta.thinking_blocks) this.thinking(block);
      if (typeof delta.content === 'string' && delta.content !== '') this.text('output_text', delta.content);
      if (typeof delta.refusal === 'string' && delta.refusal !== '') this.text('refusal', delta.refusal);
      if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) this.toolCall(call);
      // Some servers send `finish_reason: ""` on every chunk: only a reason is the end.
      if (typeof choice.finish_reason === 'string' && choice.finish_reason !== '')
        this.finishReason = choice.finish_reason;
    }
    return this.flush();
  }

  /** The events that close every open item and the response, once the chat stream has ended. */
  finish(): ResponsesEvent[] {
    this.start({});
    const incompleteReason = incompleteReasonOf(this.finishReason);
    if (incompleteReason) {
      // Cut short: the item being generated is the last one still open (a call still unnamed
      // comes after the rest); one already done (a whole thinking block) was not cut.
      const last = this.items.at(-1);
      this.cut =
        [...this.calls.values()].filter((call) => !call.announced).at(-1) ?? (last?.open ? last : undefined);
    }
    this.closeMessage();
    for (const call of this.calls.values()) if (!call.announced) this.announce(call);
    for (const item of this.items) if (item.kind === 'call') this.closeCall(item);
    if (this.items.every((item) => item.kind === 'reasoning')) {
      // Neither text nor calls: still one (empty) assistant message, as OpenAI answers.
      const message = this.openMessage();
      if (incompleteReason) this.cut = message;
      this.openPart(message, 'output_text');
      this.closeMessage();
    }
    // No usage came: the gateway's count, which is what it charges.
    this.usage ??= this.count.usageOf(undefined);
    const status = incompleteReason ? 'incomplete' : 'completed';
    this.emit(`response.${status}`, { response: this.response(status, incompleteReason) });
    return this.flush();
  }

  /** The Responses API's `error` event for a chat stream that was an error before anything else. */
  errorEvent(error: Json): ResponsesEvent[] {
    const text = (value: unknown) => (typeof value === 'string' ? value : null);
    const renamed = this.paths ? responsesErrorObject(error, this.paths) : error;
    this.emit('error', {
      code: text(error.code) ?? text(error.type),
      message: text(renamed.message) ?? 'The backend failed.',
      param: text(renamed.param),
    });
    return this.flush();
  }

  /** `response.failed` for a stream that broke after it started. */
  fail(message: string): ResponsesEvent[] {
    this.start({});
    this.emit('response.failed', {
      response: this.response('failed', undefined, { code: 'server_error', message }),
    });
    return this.flush();
  }

  private start(payload: Json): void {
    if (this.started) return;
    this.started = true;
    if (typeof payload.model === 'string' && payload.model !== '') this.model = payload.model;
    if (typeof payload.created === 'number') this.createdAt = payload.created;
    this.emit('response.created', { response: this.response('in_progress') });
    this.emit('response.in_progress', { response: this.response('in_progress') });
  }

  private text(type: Part['type'], piece: string): void {
    const message = this.message ?? this.openMessage();
    let index = message.parts.findIndex((part) => part.type === type);
    if (index === -1) index = this.openPart(message, type);
    const part = message.parts[index] as Part;
    part.text += piece;
    this.count.add(piece);
    const where = { item_id: message.id, output_index: message.outputIndex, content_index: index };
    if (type === 'refusal') this.emit('response.refusal.delta', { ...where, delta: piece });
    else this.emit('response.output_text.delta', { ...where, delta: piece, logprobs: [] });
  }

  /**
   * A signed thinking block (the anthropic backend sends each whole when it ends, before the
   * text or calls that follow it) as a complete reasoning item: its summary text in one delta,
   * its signature as `encrypted_content`. Bare `reasoning_content` deltas stay unsent.
   */
  private thinking(block: unknown): void {
    const reasoning = reasoningOfThinkingBlock(block);
    if (!reasoning) return;
    this.closeMessage();
    const item: ReasoningItem = {
      kind: 'reasoning',
      id: newId('rs_'),
      outputIndex: this.items.length,
      reasoning,
      open: false,
    };
    this.items.push(item);
    this.count.add(reasoning.text);
    const where = { item_id: item.id, output_index: item.outputIndex };
    this.emit('response.output_item.added', {
      output_index: item.outputIndex,
      item: reasoningItem(item.id, 'in_progress', { text: '', encryptedContent: null }),
    });
    if (reasoning.text !== '') {
      const part = { ...where, summary_index: 0 };
      this.emit('response.reasoning_summary_part.added', {
        ...part,
        part: { type: 'summary_text', text: '' },
      });
      this.emit('response.reasoning_summary_text.delta', { ...part, delta: reasoning.text });
      this.emit('response.reasoning_summary_text.done', { ...part, text: reasoning.text });
      this.emit('response.reasoning_summary_part.done', {
        ...part,
        part: { type: 'summary_text', text: reasoning.text },
      });
    }
    this.emit('response.output_item.done', {
      output_index: item.outputIndex,
      item: reasoningItem(item.id, 'completed', reasoning),
    });
  }

  private openMessage(): MessageItem {
    const message: MessageItem = {
      kind: 'message',
      id: newId('msg_'),
      outputIndex: this.items.length,
      parts: [],
      open: true,
    };
    this.items.push(message);
    this.message = message;
    this.emit('response.output_item.added', {
      output_index: message.outputIndex,
      item: messageItem(message.id, 'in_progress', []),
    });
    return message;
  }

  /** Opens a content part of the message; returns its content_index. */
  private openPart(message: MessageItem, type: Part['type']): number {
    const part: Part = { type, text: '' };
    message.parts.push(part);
    const index = message.parts.length - 1;
    this.emit('response.content_part.added', {
      item_id: message.id,
      output_index: message.outputIndex,
      content_index: index,
      part: contentPart(part),
    });
    return index;
  }

  private closeMessage(): void {
    const message = this.message;
    if (!message) return;
    this.message = undefined;
    message.open = false;
    message.parts.forEach((part, index) => {
      const where = { item_id: message.id, output_index: message.outputIndex, content_index: index };
      if (part.type === 'refusal') this.emit('response.refusal.done', { ...where, refusal: part.text });
      else this.emit('response.output_text.done', { ...where, text: part.text, logprobs: [] });
      this.emit('response.content_part.done', { ...where, part: contentPart(part) });
    });
    this.emit('response.output_item.done', {
      output_index: message.outputIndex,
      item: messageItem(message.id, this.doneStatus(message), message.parts.map(contentPart)),
    });
  }

  private toolCall(delta: unknown): void {
    if (!isObject(delta)) return;
    const index = typeof delta.index === 'number' ? delta.index : 0;
    let call = this.calls.get(index);
    if (!call) {
      // Text, then a call: the text is finished.
      this.closeMessage();
      call = {
        kind: 'call',
        id: newId('fc_'),
        outputIndex: -1,
        callId: '',
        name: '',
        arguments: '',
        held: '',
        announced: false,
        open: true,
      };
      this.calls.set(index, call);
    }
    const fn = isObject(delta.function) ? delta.function : {};
    if (typeof delta.id === 'string' && delta.id !== '' && call.callId === '') call.callId = delta.id;
    // Servers send the name whole, once; one that repeats it on every chunk must not double it.
    if (typeof fn.name === 'string' && fn.name !== '' && call.name === '') {
      call.name = fn.name;
      this.count.add(fn.name);
    }
    const piece = typeof fn.arguments === 'string' ? fn.arguments : '';
    this.count.add(piece);
    if (call.announced) this.arguments(call, piece);
    else {
      call.held += piece;
      if (call.name !== '') this.announce(call);
    }
  }

  private announce(call: CallItem): void {
    call.announced = true;
    call.outputIndex = this.items.length;
    if (call.callId === '') call.callId = newId('call_');
    this.items.push(call);
    this.emit('response.output_item.added', {
      output_index: call.outputIndex,
      item: functionCallItem(call.id, 'in_progress', { ...call, arguments: '' }),
    });
    const held = call.held;
    call.held = '';
    this.arguments(call, held);
  }

  private arguments(call: CallItem, piece: string): void {
    if (piece === '') return;
    call.arguments += piece;
    this.emit('response.function_call_arguments.delta', {
      item_id: call.id,
      output_index: call.outputIndex,
      delta: piece,
    });
  }

  private closeCall(call: CallItem): void {
    if (!call.open) return;
    call.open = false;
    this.emit('response.function_call_arguments.done', {
      item_id: call.id,
      name: call.name,
      output_index: call.outputIndex,
      arguments: call.arguments,
    });
    this.emit('response.output_item.done', {
      output_index: call.outputIndex,
      item: functionCallItem(call.id, this.doneStatus(call), call),
    });
  }

  /** A finished item's status: `incomplete` for the one the answer was cut short in. */
  private doneStatus(item: Item): ItemStatus {
    return item === this.cut ? 'incomplete' : 'completed';
  }

  private outputItems(): Json[] {
    return this.items.map((item) => {
      const status = item.open ? 'in_progress' : this.doneStatus(item);
      if (item.kind === 'reasoning') return reasoningItem(item.id, status, item.reasoning);
      return item.kind === 'message'
        ? messageItem(item.id, status, item.parts.map(contentPart))
        : functionCallItem(item.id, status, item);
    });
  }

  private response(
    status: ResponseState['status'],
    incompleteReason?: ResponseState['incompleteReason'],
    error?: ResponseState['error'],
  ): Json {
    return responseObject(this.body, {
      id: this.id,
      createdAt: this.createdAt,
      model: this.model,
      status,
      output: status === 'in_progress' ? [] : this.outputItems(),
      incompleteReason,
      error,
      usage: this.usage,
    });
  }

  private emit(type: string, fields: Json): void {
    this.out.push({ type, data: { type, sequence_number: this.sequence++, ...fields } });
  }

  private flush(): ResponsesEvent[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}
