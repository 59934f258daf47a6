import { splitEvents } from '../backends/sse-splitter.js';
import { eventData, type TokenUsage } from './usage.js';

const DONE = Buffer.from('data: [DONE]');

/**
 * Where the `data: [DONE]` event starts in a block of complete events, or -1. Only at the start
 * of a line, so a `[DONE]` inside some text is never taken for it.
 */
export function doneEventAt(block: Buffer): number {
  for (let at = block.indexOf(DONE); at !== -1; at = block.indexOf(DONE, at + 1)) {
    if (at === 0 || block[at - 1] === 0x0a) return at;
  }
  return -1;
}

/**
 * The usage chunk a client asked for with `stream_options.include_usage`, for a stream whose
 * upstream sent none (a server that ignores the option, a module): `choices: []` and the counted
 * usage, with the stream's own id, created and model, as OpenAI's last chunk has them. Built from
 * the stream's first event, which the read-ahead holds.
 */
export function closingUsageEvent(head: Buffer | undefined, usage: TokenUsage): Buffer {
  let first: Record<string, unknown> | undefined;
  for (const event of head ? splitEvents(head) : []) {
    first = eventData(event);
    if (first) break;
  }
  const legacy = first?.object === 'text_completion';
  const chunk: Record<string, unknown> = {
    id: first?.id ?? '',
    object: legacy ? 'text_completion' : 'chat.completion.chunk',
    created: first?.created ?? Math.floor(Date.now() / 1000),
    model: first?.model ?? '',
  };
  if (!legacy && first?.system_fingerprint !== undefined) chunk.system_fingerprint = first.system_fingerprint;
  chunk.choices = [];
  chunk.usage = usage;
  return Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
}
