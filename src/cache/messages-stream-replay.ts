/**
 * Response cache: replays a stored Anthropic Message as the SSE stream `POST /v1/messages` sends
 * with `stream: true`, in the event order the Anthropic SDK's MessageStream accumulates. The
 * Messages twin of stream-replay.ts; the output depends only on the answer.
 */

import { encodeEvent } from '../backends/sse-encoder.js';
import { countOf, isObject, type Json, listOf } from '../json-values.js';
import { splitText } from './stream-replay.js';

/** Tool input is JSON nobody reads incrementally: bigger pieces (as for chat tool arguments). */
const INPUT_PIECE = 128;

/**
 * Block types whose `input` streams as `input_json_delta`: the ones the SDK's MessageStream
 * accumulates input for. Any other block (mcp_tool_use included, which the non-beta reader does
 * not track) goes whole in its `content_block_start`, which every reader keeps as it is.
 */
const STREAMED_INPUT = new Set(['tool_use', 'server_tool_use']);

/**
 * Usage fields only known once the answer is done. `message_start` carries them as null; the
 * SDK overwrites them from `message_delta` only when that sends a non-null value.
 */
const OUTPUT_SIDE = ['server_tool_use', 'output_tokens_details'];
/** Prompt counts Anthropic repeats (as whole-message totals) in `message_delta`. */
const INPUT_COUNTS = ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'];

/** Anthropic names every event after its `type`; the SDK's reader skips unnamed ones. */
function event(payload: Json & { type: string }): string {
  return encodeEvent(payload, payload.type);
}

/**
 * The whole SSE body of a streamed Messages response equal to `answer`: `message_start`, per
 * block (in order) `content_block_start`, its deltas and `content_block_stop`, then
 * `message_delta` and `message_stop`.
 *
 * `message_start` says `output_tokens: 1` (never more than the answer's own count): that is what
 * Anthropic itself sends there, so a client or usage reader that looks at the first event sees
 * what the real API shows it; the final count follows in `message_delta`, which every reader
 * (the SDK, the gateway's StreamUsage, MessagesStreamAssembler) lets win.
 */
export function replayMessageAsStream(answer: Json): Buffer {
  const usage = isObject(answer.usage) ? answer.usage : {};
  const outputTokens = countOf(usage.output_tokens) ?? 0;

  const startUsage: Json = { ...usage, output_tokens: Math.min(1, outputTokens) };
  for (const field of OUTPUT_SIDE) if (field in startUsage) startUsage[field] = null;
  const message: Json = { ...answer, content: [], stop_reason: null, stop_sequence: null, usage: startUsage };
  if ('stop_details' in answer) message.stop_details = null;

  const out: string[] = [event({ type: 'message_start', message })];
  listOf(answer.content).forEach((block, index) => {
    if (isObject(block)) out.push(...blockEvents(block, index));
  });

  const delta: Json = {
    stop_reason: answer.stop_reason ?? null,
    stop_sequence: answer.stop_sequence ?? null,
  };
  // The SDK takes these two from `message_delta` alone (stop_details even when absent there).
  if ('stop_details' in answer) delta.stop_details = answer.stop_details;
  if ('container' in answer) delta.container = answer.container;
  const deltaUsage: Json = { output_tokens: outputTokens };
  for (const field of INPUT_COUNTS) if (usage[field] !== undefined) deltaUsage[field] = usage[field];
  for (const field of OUTPUT_SIDE)
    if (usage[field] !== undefined && usage[field] !== null) deltaUsage[field] = usage[field];
  out.push(event({ type: 'message_delta', delta, usage: deltaUsage }));
  out.push(event({ type: 'message_stop' }));
  return Buffer.from(out.join(''), 'utf8');
}

/** One content block as its start, its deltas and its stop. */
function blockEvents(block: Json, index: number): string[] {
  const start = (content_block: Json): string => event({ type: 'content_block_start', index, content_block });
  const delta = (payload: Json): string => event({ type: 'content_block_delta', index, delta: payload });
  const out: string[] = [];

  if (block.type === 'text' && typeof block.text === 'string') {
    const citations = Array.isArray(block.citations) ? block.citations : undefined;
    // Citations arrive one per delta onto the start block's (empty) list; a `null` list stays.
    out.push(start({ ...block, text: '', ...(citations ? { citations: [] } : {}) }));
    for (const citation of citations ?? []) out.push(delta({ type: 'citations_delta', citation }));
    if (block.text) for (const text of splitText(block.text)) out.push(delta({ type: 'text_delta', text }));
  } else if (block.type === 'thinking' && typeof block.thinking === 'string') {
    const signature = typeof block.signature === 'string' ? block.signature : undefined;
    // The SDK appends thinking to the start block's string and replaces its signature.
    out.push(start({ ...block, thinking: '', ...(signature !== undefined ? { signature: '' } : {}) }));
    if (block.thinking)
      for (const thinking of splitText(block.thinking)) out.push(delta({ type: 'thinking_delta', thinking }));
    if (signature) out.push(delta({ type: 'signature_delta', signature }));
  } else if (typeof block.type === 'string' && STREAMED_INPUT.has(block.type) && isObject(block.input)) {
    out.push(start({ ...block, input: {} }));
    const json = JSON.stringify(block.input);
    // An empty input needs no delta: the start block's `{}` already is it.
    if (json !== '{}')
      for (const partial_json of splitText(json, INPUT_PIECE))
        out.push(delta({ type: 'input_json_delta', partial_json }));
  } else {
    // redacted_thinking, tool results and block types added later: whole, as Anthropic sends them.
    out.push(start(block));
  }
  out.push(event({ type: 'content_block_stop', index }));
  return out;
}
