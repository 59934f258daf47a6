import { StringDecoder } from 'node:string_decoder';
import { UpstreamError } from '../../errors.js';
import { isObject, type Json } from './json-values.js';

/** One event of a chat completions stream: a chunk, or the `[DONE]` sentinel. */
export type ChatStreamEvent = { kind: 'chunk'; chunk: Json } | { kind: 'done' };

/** No real chunk comes near this; an upstream that never ends an event must not fill our memory. */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;

/** The joined `data:` lines of one event, or undefined when it has none (a comment, a name). */
function dataOf(event: string): string | undefined {
  const data = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return data.length === 0 ? undefined : data.join('\n');
}

function eventOf(data: string): ChatStreamEvent | undefined {
  if (data.trim() === '[DONE]') return { kind: 'done' };
  try {
    const parsed: unknown = JSON.parse(data);
    return isObject(parsed) ? { kind: 'chunk', chunk: parsed } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The events of a chat completions SSE body as they complete. Comments (`: keep-alive`) and data
 * that is not a JSON object are skipped, as OpenAI's SDK skips them. Own code, not
 * http/sse-splitter.ts: backends sit below http/ (biome.json), and this decodes text anyway.
 * Text already searched for a boundary is not searched again, so a long event costs linear time.
 */
export async function* chatStreamEvents(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
): AsyncGenerator<ChatStreamEvent> {
  // Per stream: a global regex keeps its position in lastIndex, and streams interleave.
  const boundary = /\r?\n\r?\n/g;
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let searchFrom = 0;
  for await (const chunk of body) {
    pending += decoder.write(chunk);
    let start = 0;
    // A boundary may begin up to 3 characters before the new text (`\r\n\r` + `\n`).
    boundary.lastIndex = Math.max(0, searchFrom - 3);
    for (let found = boundary.exec(pending); found; found = boundary.exec(pending)) {
      const data = dataOf(pending.slice(start, found.index));
      start = found.index + found[0].length;
      const event = data === undefined ? undefined : eventOf(data);
      if (event) yield event;
    }
    pending = pending.slice(start);
    searchFrom = pending.length;
    if (pending.length > MAX_EVENT_CHARS)
      throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
  }
  // An upstream that ended without a final blank line still sent its last event.
  const data = dataOf(pending + decoder.end());
  const event = data === undefined ? undefined : eventOf(data);
  if (event) yield event;
}
