import { StringDecoder } from 'node:string_decoder';
import { UpstreamError } from '../../errors.js';

/** No real event comes near this; an upstream that never ends one must not fill our memory. */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;
const BOUNDARY = /\r?\n\r?\n/;

/**
 * Cuts the upstream's SSE text into events and returns each event's `data:` payload. Own code
 * rather than http/sse-splitter.ts: backends sit below http/ in the layering (biome.json), and
 * this one decodes the text anyway, where the splitter keeps raw bytes for relaying.
 */
export class SseDataReader {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** The data of every event completed by this chunk, in order. */
  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const parts = this.pending.split(BOUNDARY);
    this.pending = parts.pop() ?? '';
    if (this.pending.length > MAX_EVENT_CHARS)
      throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
    return parts.map(dataOf).filter((data): data is string => data !== undefined);
  }

  /** The data of an event the upstream left unterminated at its end, if any. */
  end(): string[] {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    const data = dataOf(rest);
    return data === undefined ? [] : [data];
  }
}

/** The joined `data:` lines of one event (comments, `event:` and `id:` lines aside). */
function dataOf(event: string): string | undefined {
  const lines = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return lines.length === 0 ? undefined : lines.join('\n');
}
