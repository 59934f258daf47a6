import type { SecretScrubber } from './secret-scrubber.js';
import { SseSplitter, splitEvents } from './sse-splitter.js';

/** Every error event has this word in its bytes (its name, a `"type"` or its `"error"` key). */
const ERROR_WORD = Buffer.from('error');
const ERROR_EVENT_NAME = /^event:[ \t]*error[ \t]*\r?$/m;
/** Anthropic's error data, the Responses API's `error` event, vLLM's older error object. */
const ERROR_TYPE = /"(?:type|object)"\s*:\s*"error"/;
/** OpenAI's in-band error (and vLLM's, LiteLLM's): the data is an object under an `error` key. */
const ERROR_DATA = /^data:[ \t]*\{\s*"error"\s*:/m;

/**
 * A stream with its error events scrubbed of the gateway's secrets (secret-scrubber.ts): an
 * upstream's error message may echo the gateway's key or the upstream's address, and goes to the
 * client. Only error events: the model's own text may name the upstream's host, and is the
 * client's. Everything else goes byte for byte. The bytes are cut at event boundaries, so a
 * secret split across TCP chunks is whole when looked for; the client sees no difference, the
 * gateway relays whole events anyway. A block is split into events and looked at only when it
 * may hold both an error event and a secret, so most blocks cost a few byte searches.
 */
export async function* scrubErrorEvents(
  chunks: AsyncIterable<Buffer>,
  scrubber: SecretScrubber,
): AsyncGenerator<Buffer> {
  const blocks = new SseSplitter();
  const scrubbed = (block: Buffer): Buffer => {
    if (!block.includes(ERROR_WORD) || !scrubber.mayHold(block)) return block;
    const events = splitEvents(block).map((event) =>
      isErrorEvent(event) ? scrubber.scrubBytes(event) : event,
    );
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

function isErrorEvent(event: Buffer): boolean {
  const text = event.toString('utf8');
  return ERROR_EVENT_NAME.test(text) || ERROR_TYPE.test(text) || ERROR_DATA.test(text);
}
