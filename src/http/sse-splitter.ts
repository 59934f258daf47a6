import { UpstreamError } from '../errors.js';

const LF2 = Buffer.from('\n\n');
/** No real event comes near this; an upstream that never ends one must not fill our memory. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Cuts an SSE byte stream at event boundaries without decoding it. Each push returns the
 * bytes of every event completed so far, as one buffer, exactly as the upstream sent them;
 * an event cut across TCP chunks waits for its end.
 */
export class SseSplitter {
  private pending: Buffer | undefined;

  push(chunk: Buffer): Buffer | undefined {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const lf = data.lastIndexOf(LF2);
    const crlf = data.lastIndexOf(CRLF2);
    const end = Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4);
    if (end === -1) {
      if (data.length > MAX_EVENT_BYTES)
        throw new UpstreamError('The upstream sent an event larger than 16 MiB.');
      this.pending = data;
      return undefined;
    }
    this.pending = end < data.length ? data.subarray(end) : undefined;
    return end === data.length ? data : data.subarray(0, end);
  }

  /** Whatever the upstream sent after its last complete event. */
  rest(): Buffer | undefined {
    const rest = this.pending;
    this.pending = undefined;
    return rest;
  }
}

/** Splits a block of complete events into single events (each keeps its terminator). */
export function splitEvents(block: Buffer): Buffer[] {
  const events: Buffer[] = [];
  let start = 0;
  while (start < block.length) {
    const lf = block.indexOf(LF2, start);
    const crlf = block.indexOf(CRLF2, start);
    let end: number;
    if (lf === -1 && crlf === -1) end = block.length;
    else if (crlf === -1 || (lf !== -1 && lf < crlf)) end = lf + 2;
    else end = crlf + 4;
    events.push(block.subarray(start, end));
    start = end;
  }
  return events;
}
