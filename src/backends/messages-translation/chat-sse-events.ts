import { isObject, type Json } from '../../json-values.js';
import { SseDataReader } from '../sse-data-reader.js';

/** One event of a chat completions stream: a chunk, or the `[DONE]` sentinel. */
export type ChatStreamEvent = { kind: 'chunk'; chunk: Json } | { kind: 'done' };

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
 * that is not a JSON object are skipped, as OpenAI's SDK skips them.
 */
export async function* chatStreamEvents(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
): AsyncGenerator<ChatStreamEvent> {
  const reader = new SseDataReader();
  for await (const chunk of body) {
    for (const data of reader.push(chunk)) {
      const event = eventOf(data);
      if (event) yield event;
    }
  }
  // An upstream that ended without a final blank line still sent its last event.
  for (const data of reader.end()) {
    const event = eventOf(data);
    if (event) yield event;
  }
}
