import { valueStartAfterKey } from './json-bytes.js';

const KEY = Buffer.from('"sequence_number"');
/** More digits than any stream numbers its events with: not a count to continue. */
const MAX_DIGITS = 15;
/** What may follow the digits of a number that is not whole: `.`, `e`, `E`. */
const NOT_WHOLE = new Set([0x2e, 0x65, 0x45]);

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x30 && byte <= 0x39;
}

/** The whole number written at `at`; undefined for anything else (a sign, a fraction, an exponent). */
function countAt(bytes: Buffer, at: number): number | undefined {
  let end = at;
  while (end < bytes.length && isDigit(bytes[end])) end++;
  if (end === at || end - at > MAX_DIGITS || NOT_WHOLE.has(bytes[end] ?? 0)) return undefined;
  return Number(bytes.toString('latin1', at, end));
}

/**
 * The numbering of a Responses API stream as the relay passes it on, translated or an upstream's
 * own: every event carries its `sequence_number`, so an event the gateway adds at the end (the
 * `error` that ends a stream shutdown cut, or one that failed) takes the number after the last one
 * relayed. Read from the bytes: a `"sequence_number"` key cannot occur inside a JSON string (its
 * quotes would be escaped), and nothing is parsed.
 */
export class ResponsesSequence {
  private last: number | undefined;

  /** Notes the numbers of a block of complete events. */
  see(block: Buffer): void {
    for (let at = block.indexOf(KEY); at !== -1; at = block.indexOf(KEY, at + KEY.length)) {
      const value = valueStartAfterKey(block, at, KEY);
      const number = value === -1 ? undefined : countAt(block, value);
      if (number !== undefined && (this.last === undefined || number > this.last)) this.last = number;
    }
  }

  /** The number of the next event: 0 when no event relayed so far carried one. */
  get next(): number {
    return this.last === undefined ? 0 : this.last + 1;
  }
}
