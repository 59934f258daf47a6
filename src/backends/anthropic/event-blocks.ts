import { UpstreamError } from '../../errors.js';

const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');
/** A terminator split across chunks starts at most this many bytes before the new chunk. */
const SEAM = CRLF2.length - 1;
/** No real event comes near this; an upstream that never ends one must not fill our memory. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * Cuts an SSE byte stream into blocks of whole events, bytes untouched: each push returns every
 * event the chunk completed (the chunk itself, uncopied, when it ends on an event's end) and
 * holds the start of an unfinished one. Linear in the bytes however events are cut. Own code
 * rather than http/sse-splitter.ts, which does the same for the relay: backends sit below http/
 * (biome.json), as sse-data-reader.ts says.
 */
export class EventBlocks {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): Buffer | undefined {
    const seam = this.pendingBytes > 0 ? this.lastPendingBytes(SEAM) : undefined;
    const searched = seam ? Buffer.concat([seam, chunk]) : chunk;
    const lf = searched.lastIndexOf(LF2);
    const crlf = searched.lastIndexOf(CRLF2);
    const found = Math.max(lf === -1 ? -1 : lf + LF2.length, crlf === -1 ? -1 : crlf + CRLF2.length);
    if (found === -1) {
      if (this.pendingBytes + chunk.length > MAX_EVENT_BYTES)
        throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      return undefined;
    }
    const data = this.pendingBytes > 0 ? Buffer.concat([...this.pending, chunk]) : chunk;
    const end = this.pendingBytes - (seam?.length ?? 0) + found;
    this.pending = end < data.length ? [data.subarray(end)] : [];
    this.pendingBytes = data.length - end;
    return end === data.length ? data : data.subarray(0, end);
  }

  /** What came after the last whole event: an event the stream never ended. */
  rest(): Buffer | undefined {
    const rest = this.pendingBytes > 0 ? Buffer.concat(this.pending) : undefined;
    this.pending = [];
    this.pendingBytes = 0;
    return rest;
  }

  private lastPendingBytes(count: number): Buffer {
    const parts: Buffer[] = [];
    let need = count;
    for (let i = this.pending.length - 1; i >= 0 && need > 0; i--) {
      const part = this.pending[i] as Buffer;
      const take = Math.min(need, part.length);
      parts.unshift(part.subarray(part.length - take));
      need -= take;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }
}

/** A block of whole events as single events, each with its terminator. */
export function eventsOf(block: Buffer): Buffer[] {
  const events: Buffer[] = [];
  let start = 0;
  // Each kind of terminator is looked for again only once the cut has passed the one found, so
  // a block without any `\r\n\r\n` is not searched to its end at every event.
  let lf = block.indexOf(LF2);
  let crlf = block.indexOf(CRLF2);
  while (start < block.length) {
    if (lf !== -1 && lf < start) lf = block.indexOf(LF2, start);
    if (crlf !== -1 && crlf < start) crlf = block.indexOf(CRLF2, start);
    let end: number;
    if (lf === -1 && crlf === -1) end = block.length;
    else if (crlf === -1 || (lf !== -1 && lf < crlf)) end = lf + LF2.length;
    else end = crlf + CRLF2.length;
    events.push(block.subarray(start, end));
    start = end;
  }
  return events;
}
