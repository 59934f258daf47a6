import { StringDecoder } from 'node:string_decoder';
import { UpstreamError } from '../../errors.js';

/** No real chat chunk comes near this; a backend that never ends an event must not fill our memory. */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;
const BOUNDARY = /\r?\n\r?\n/;

/**
 * Cuts a chat completions SSE stream into events and returns each event's `data:` payload,
 * however the bytes were cut (an event or a UTF-8 character split across chunks waits for its
 * end). Own code rather than http/sse-splitter.ts, which backends may not import (biome.json's
 * layering), and which keeps raw bytes where this needs decoded text.
 */
export class SseDataReader {
  private readonly decoder = new StringDecoder('utf8');
  /** The start of an event not yet ended: holds no boundary. */
  private pending = '';

  /** The data of every event this chunk completed, in order. */
  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const parts = this.pending.split(BOUNDARY);
    this.pending = parts.pop() ?? '';
    if (this.pending.length > MAX_EVENT_CHARS)
      throw new UpstreamError('The backend sent an event larger than 16 MiB.');
    return parts.flatMap(dataOf);
  }

  /** The data of an event the stream left without its blank line at the end, if any. */
  end(): string[] {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    return dataOf(rest);
  }
}

/** The joined `data:` lines of one event (comments, `event:` and `id:` lines aside), if it has any. */
function dataOf(event: string): string[] {
  const lines = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return lines.length === 0 ? [] : [lines.join('\n')];
}
