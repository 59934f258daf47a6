import { InvalidRequestError } from '../errors.js';

const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_PART_HEADER = 16 * 1024;
const MAX_MODEL_VALUE = 1024;

/**
 * The field name in a part's Content-Disposition, quoted or not, any case. RFC 5987 names
 * (`name*=`) are refused: they could spell `model` in a form this check would not see.
 */
function partName(headers: string): string | undefined {
  const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1];
  if (disposition === undefined) return undefined;
  if (/;\s*name\*\s*=/i.test(disposition)) {
    throw new InvalidRequestError('Multipart field names in the encoded form (name*=) are not supported.');
  }
  const match = /;\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(disposition);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** The boundary parameter of a multipart/form-data Content-Type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  return match?.[1] ?? match?.[2];
}

/**
 * Streams a multipart/form-data body through while finding its `model` field and rewriting
 * it to the upstream's name. Only part headers and the small model value are ever held;
 * file contents pass straight through in the chunks they came in.
 */
export class MultipartModelRewriter {
  /** The public model name, once its part has gone by. */
  model: string | undefined;
  /** True once the body's closing delimiter (or its end) has gone by. */
  done = false;

  /** The router can decide: the model field has gone by, or the body ended without one. */
  get modelKnown(): boolean {
    return this.model !== undefined || this.done;
  }
  private readonly delimiter: Buffer;
  private readonly nextPart: Buffer;
  private pending = Buffer.alloc(0);
  /** Only the body's very first bytes may be a delimiter without the CRLF before it. */
  private atBodyStart = true;

  constructor(
    boundary: string,
    private readonly resolve: (publicModel: string) => string,
  ) {
    this.delimiter = Buffer.from(`--${boundary}`);
    this.nextPart = Buffer.from(`\r\n--${boundary}`);
  }

  /** Returns the bytes that may be forwarded now. Throws what `resolve` throws. */
  write(chunk: Buffer): Buffer {
    if (this.done) return chunk;
    // Every part header is looked at, to the end of the body: a second `model` part must not slip
    // past the allowlist that checked the first (upstreams differ in which one they read).
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Buffer[] = [];
    let cursor = 0;
    while (!this.done) {
      // Where the next part starts: the delimiter at the body start or after a CRLF.
      const at =
        this.atBodyStart && cursor === 0 && data.subarray(0, this.delimiter.length).equals(this.delimiter)
          ? 0
          : data.indexOf(this.nextPart, cursor);
      if (at === -1) {
        // Keep enough to recognise a delimiter split across chunks.
        const keep = Math.max(cursor, data.length - this.nextPart.length);
        out.push(data.subarray(cursor, keep));
        cursor = keep;
        break;
      }
      const delimiterEnd = at + (at === 0 && data[0] === 0x2d ? this.delimiter.length : this.nextPart.length);
      if (data.length < delimiterEnd + 2) {
        out.push(data.subarray(cursor, at));
        cursor = at;
        break;
      }
      if (data[delimiterEnd] === 0x2d && data[delimiterEnd + 1] === 0x2d) {
        // The closing delimiter: no model field in this body.
        this.done = true;
        break;
      }
      const headersEnd = data.indexOf(HEADER_END, delimiterEnd);
      if (headersEnd === -1) {
        if (data.length - at > MAX_PART_HEADER)
          throw new InvalidRequestError('A multipart part header is too large.');
        out.push(data.subarray(cursor, at));
        cursor = at;
        break;
      }
      const headers = data.subarray(delimiterEnd, headersEnd).toString('latin1');
      const valueStart = headersEnd + HEADER_END.length;
      if (partName(headers) !== 'model') {
        out.push(data.subarray(cursor, valueStart));
        cursor = valueStart;
        continue;
      }
      const valueEnd = data.indexOf(this.nextPart, valueStart);
      if (valueEnd === -1) {
        if (data.length - valueStart > MAX_MODEL_VALUE)
          throw new InvalidRequestError("The 'model' field is too long.", 'model');
        out.push(data.subarray(cursor, at));
        cursor = at;
        break;
      }
      if (this.model !== undefined) {
        throw new InvalidRequestError("The 'model' field appears more than once.", 'model');
      }
      this.model = data.subarray(valueStart, valueEnd).toString('utf8').trim();
      out.push(data.subarray(cursor, valueStart), Buffer.from(this.resolve(this.model)));
      cursor = valueEnd;
    }
    if (cursor > 0) this.atBodyStart = false;
    if (this.done) {
      out.push(data.subarray(cursor));
      this.pending = Buffer.alloc(0);
    } else {
      this.pending = Buffer.from(data.subarray(cursor));
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** Whatever was held back when the body ends. */
  end(): Buffer {
    this.done = true;
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }
}
