import { SseSplitter, splitEvents } from '../sse-splitter.js';

const ERROR_EVENT_NAME = /^event:[ \t]*error[ \t]*\r?$/m;
const ERROR_TYPE = /"type"\s*:\s*"error"/;

/**
 * A pass-through stream with its `error` events scrubbed: an upstream's error message may echo
 * the gateway's key or the upstream's address, and goes to the client (and, past the first
 * event, nowhere else that would scrub it). Everything else goes byte for byte. The bytes are cut
 * at event boundaries, so a secret split across TCP chunks is whole when looked for; the client
 * sees no difference, the gateway relays whole events anyway. Only a block that holds a secret at
 * all is split into events and looked at, so a stream without one costs a few byte searches.
 */
export async function* scrubErrorEvents(
  chunks: AsyncIterable<Buffer>,
  secrets: readonly string[],
  scrub: (bytes: Buffer) => Buffer,
): AsyncGenerator<Buffer> {
  const blocks = new SseSplitter();
  // Encoded once: a string needle is encoded again on every search.
  const needles = secrets.map((secret) => Buffer.from(secret));
  const scrubbed = (block: Buffer): Buffer => {
    if (!needles.some((needle) => block.includes(needle))) return block;
    const events = splitEvents(block).map((event) => (isErrorEvent(event) ? scrub(event) : event));
    return events.length === 1 ? (events[0] as Buffer) : Buffer.concat(events);
  };
  for await (const chunk of chunks) {
    const block = blocks.push(chunk);
    if (block) yield scrubbed(block);
  }
  // An unterminated last event: the client's parser drops it, but it still must not leak.
  const rest = blocks.rest();
  if (rest) yield scrubbed(rest);
}

/** Anthropic names its error events `error`; the data says `"type":"error"` as well. */
function isErrorEvent(event: Buffer): boolean {
  const text = event.toString('utf8');
  return ERROR_EVENT_NAME.test(text) || ERROR_TYPE.test(text);
}
