import { isObject, type Json } from '../../json-values.js';
import { encodeEvent } from '../sse-encoder.js';

/**
 * A whole Response object as the Responses API stream that would have produced it: for a native
 * Responses upstream that ignored `stream: true` and answered JSON, which a client that asked for
 * a stream reads as an empty one (the official SDK finds no events, the AI SDK's streamText ends
 * with no text). The events are OpenAI's, in its order: `response.created`, `response.in_progress`,
 * then per output item `output_item.added`, its content as one delta per part and the `.done`
 * events, then `response.completed` (`.incomplete`, `.failed`), which carries the Response as it
 * came. Item types without deltas of their own (hosted tools' calls) are added, then done.
 */

const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** The event that ends the stream of a response in each finished status. */
const CLOSING_EVENT: Readonly<Record<string, string>> = {
  completed: 'response.completed',
  incomplete: 'response.incomplete',
  failed: 'response.failed',
};

class Replay {
  private sequence = 0;
  private readonly out: string[] = [];

  emit(type: string, fields: Json): void {
    this.out.push(encodeEvent({ type, sequence_number: this.sequence++, ...fields }, type));
  }

  bytes(): Buffer {
    return Buffer.from(this.out.join(''));
  }
}

/** An item as `output_item.added` announces it: in progress, its content still to come. */
function openedItem(item: Json): Json {
  const opened: Json = { ...item };
  if ('status' in item) opened.status = 'in_progress';
  switch (item.type) {
    case 'message':
      opened.content = [];
      break;
    case 'function_call':
      opened.arguments = '';
      break;
    case 'custom_tool_call':
      opened.input = '';
      break;
    case 'reasoning':
      opened.summary = [];
      if (Array.isArray(item.content)) opened.content = [];
      break;
  }
  return opened;
}

function replayMessage(replay: Replay, item: Json, where: Json): void {
  list(item.content).forEach((part, index) => {
    if (!isObject(part)) return;
    const at = { ...where, content_index: index };
    if (part.type === 'output_text') {
      replay.emit('response.content_part.added', {
        ...at,
        part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
      });
      const whole = text(part.text);
      if (whole !== '') replay.emit('response.output_text.delta', { ...at, delta: whole, logprobs: [] });
      // The AI SDK reads citations (its sources) from these events, not from the finished part.
      list(part.annotations).forEach((annotation, annotationIndex) => {
        replay.emit('response.output_text.annotation.added', {
          ...at,
          annotation_index: annotationIndex,
          annotation,
        });
      });
      replay.emit('response.output_text.done', { ...at, text: whole, logprobs: list(part.logprobs) });
    } else if (part.type === 'refusal') {
      replay.emit('response.content_part.added', { ...at, part: { type: 'refusal', refusal: '' } });
      const refusal = text(part.refusal);
      if (refusal !== '') replay.emit('response.refusal.delta', { ...at, delta: refusal });
      replay.emit('response.refusal.done', { ...at, refusal });
    } else replay.emit('response.content_part.added', { ...at, part });
    replay.emit('response.content_part.done', { ...at, part });
  });
}

function replayReasoning(replay: Replay, item: Json, where: Json): void {
  list(item.summary).forEach((part, index) => {
    if (!isObject(part)) return;
    const at = { ...where, summary_index: index };
    const summary = text(part.text);
    replay.emit('response.reasoning_summary_part.added', { ...at, part: { type: 'summary_text', text: '' } });
    if (summary !== '') replay.emit('response.reasoning_summary_text.delta', { ...at, delta: summary });
    replay.emit('response.reasoning_summary_text.done', { ...at, text: summary });
    replay.emit('response.reasoning_summary_part.done', {
      ...at,
      part: { type: 'summary_text', text: summary },
    });
  });
  list(item.content).forEach((part, index) => {
    if (!isObject(part) || part.type !== 'reasoning_text') return;
    const at = { ...where, content_index: index };
    const reasoning = text(part.text);
    if (reasoning !== '') replay.emit('response.reasoning_text.delta', { ...at, delta: reasoning });
    replay.emit('response.reasoning_text.done', { ...at, text: reasoning });
  });
}

function replayItem(replay: Replay, item: Json, outputIndex: number): void {
  const where = { item_id: text(item.id), output_index: outputIndex };
  replay.emit('response.output_item.added', { output_index: outputIndex, item: openedItem(item) });
  switch (item.type) {
    case 'message':
      replayMessage(replay, item, where);
      break;
    case 'reasoning':
      replayReasoning(replay, item, where);
      break;
    case 'function_call': {
      const args = text(item.arguments);
      if (args !== '') replay.emit('response.function_call_arguments.delta', { ...where, delta: args });
      replay.emit('response.function_call_arguments.done', {
        ...where,
        name: text(item.name),
        arguments: args,
      });
      break;
    }
    case 'custom_tool_call': {
      const input = text(item.input);
      if (input !== '') replay.emit('response.custom_tool_call_input.delta', { ...where, delta: input });
      replay.emit('response.custom_tool_call_input.done', { ...where, input });
      break;
    }
  }
  replay.emit('response.output_item.done', { output_index: outputIndex, item });
}

/**
 * The SSE bytes of the stream that `response` (a whole Response object) is the end of; undefined
 * for one that is not finished (a background response still queued or running, a cancelled
 * one), which no stream closes: the caller relays it as it came.
 */
export function responseStreamReplay(response: Json): Buffer | undefined {
  const closing = CLOSING_EVENT[text(response.status)];
  if (response.object !== 'response' || closing === undefined) return undefined;
  const replay = new Replay();
  const started: Json = {
    ...response,
    status: 'in_progress',
    output: [],
    error: null,
    incomplete_details: null,
    usage: null,
  };
  if ('completed_at' in response) started.completed_at = null;
  replay.emit('response.created', { response: started });
  replay.emit('response.in_progress', { response: started });
  list(response.output).forEach((item, index) => {
    if (isObject(item)) replayItem(replay, item, index);
  });
  replay.emit(closing, { response });
  return replay.bytes();
}
