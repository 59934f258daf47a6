import { UpstreamError } from '../errors.js';

const LF2 = Buffer.from('\n\n');
/** No real event comes near this; an upstream that never ends one must not fill our memory. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');
/** A terminator split across chunks starts at most this many bytes before the new chunk. */
const SEAM = CRLF2.length - 1;

/** The end (past its terminator) of the last complete event in `data`, or -1. */
function lastEventEnd(data: Buffer): number {
  const lf = data.lastIndexOf(LF2);
  const crlf = data.lastIndexOf(CRLF2);
  return Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4);
}

/**
 * Cuts an SSE byte stream at event boundaries without decoding it. Each push returns the
 * bytes of every event completed so far, as one buffer, exactly as the upstream sent them;
 * an event cut across TCP chunks waits for its end. Work stays linear in the bytes however an
 * event is cut: held chunks are neither re-joined nor re-searched on every push.
 */
export class SseSplitter {
  /** The start of an unfinished event: holds no complete terminator. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): Buffer | undefined {
    const tail = this.pendingBytes > 0 ? this.tailOfPending() : undefined;
    const searched = tail ? Buffer.concat([tail, chunk]) : chunk;
    const found = lastEventEnd(searched);
    if (found === -1) {
      if (this.pendingBytes + chunk.length > MAX_EVENT_BYTES)
        throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      return undefined;
    }
    const data = this.pendingBytes > 0 ? Buffer.concat([...this.pending, chunk]) : chunk;
    const end = this.pendingBytes - (tail?.length ?? 0) + found;
    this.pending = end < data.length ? [data.subarray(end)] : [];
    this.pendingBytes = data.length - end;
    return end === data.length ? data : data.subarray(0, end);
  }

  /** Whatever the upstream sent after its last complete event. */
  rest(): Buffer | undefined {
    const rest = this.pendingBytes > 0 ? Buffer.concat(this.pending) : undefined;
    this.pending = [];
    this.pendingBytes = 0;
    return rest;
  }

  /** The last SEAM bytes held, where a terminator finished by the next chunk may begin. */
  private tailOfPending(): Buffer {
    const parts: Buffer[] = [];
    let need = SEAM;
    for (let i = this.pending.length - 1; i >= 0 && need > 0; i--) {
      const part = this.pending[i] as Buffer;
      const take = Math.min(need, part.length);
      parts.unshift(part.subarray(part.length - take));
      need -= take;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }
}

/** Splits a block of complete events into single events (each keeps its terminator). */
export function splitEvents(block: Buffer): Buffer[] {
  const events: Buffer[] = [];
  let start = 0;
  // Each terminator kind is searched again only once the cut has passed the one found, so a
  // block of many `\n\n` events is not scanned to its end for a `\r\n\r\n` at every event.
  let lf = block.indexOf(LF2);
  let crlf = block.indexOf(CRLF2);
  while (start < block.length) {
    if (lf !== -1 && lf < start) lf = block.indexOf(LF2, start);
    if (crlf !== -1 && crlf < start) crlf = block.indexOf(CRLF2, start);
    let end: number;
    if (lf === -1 && crlf === -1) end = block.length;
    else if (crlf === -1 || (lf !== -1 && lf < crlf)) end = lf + 2;
    else end = crlf + 4;
    events.push(block.subarray(start, end));
    start = end;
  }
  return events;
}
