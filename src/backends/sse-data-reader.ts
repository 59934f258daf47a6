import { StringDecoder } from 'node:string_decoder';
import { UpstreamError } from '../errors.js';

/** No real event comes near this; an upstream that never ends one must not fill our memory. */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;

/**
 * Cuts an upstream's SSE text into events and returns each event's `data:` payload, however the
 * bytes were cut (an event or a UTF-8 character split across chunks waits for its end). Shared by
 * the adapters that translate streams. Own code rather than sse-splitter.ts, which keeps the raw
 * bytes to relay: this decodes text.
 * Text already searched for a boundary is not searched again, so one long event arriving in
 * small chunks costs linear time, not quadratic.
 */
export class SseDataReader {
  private readonly decoder = new StringDecoder('utf8');
  /** The start of an event not yet ended: holds no boundary. */
  private pending = '';
  /** Per reader: a global regex keeps its position in lastIndex, and streams interleave. */
  private readonly boundary = /\r?\n\r?\n/g;

  /** The data of every event this chunk completed, in order. */
  push(chunk: Buffer): string[] {
    const searched = this.pending.length;
    this.pending += this.decoder.write(chunk);
    const out: string[] = [];
    let start = 0;
    // A boundary may begin up to 3 characters before the new text (`\r\n\r` + `\n`).
    this.boundary.lastIndex = Math.max(0, searched - 3);
    for (let found = this.boundary.exec(this.pending); found; found = this.boundary.exec(this.pending)) {
      const data = dataOf(this.pending.slice(start, found.index));
      if (data !== undefined) out.push(data);
      start = found.index + found[0].length;
    }
    this.pending = this.pending.slice(start);
    if (this.pending.length > MAX_EVENT_CHARS)
      throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
    return out;
  }

  /** The data of an event the stream left without its blank line at the end, if any. */
  end(): string[] {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    const data = dataOf(rest);
    return data === undefined ? [] : [data];
  }
}

/** The joined `data:` lines of one event (comments, `event:` and `id:` lines aside), if it has any. */
function dataOf(event: string): string | undefined {
  const lines = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return lines.length === 0 ? undefined : lines.join('\n');
}
