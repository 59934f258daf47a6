import { eventData } from './usage.js';

/**
 * An event of a Messages API stream that comes before any content: `message_start` (the id and
 * the prompt's usage) and `ping`. The read-ahead holds these back until the first content event
 * or an error, so an `error` event right after them (Anthropic's overload arrives that way) fails
 * the attempt before the client has a byte and routing can try elsewhere, as on the chat surface,
 * whose translation of the same stream sends nothing before the first content block either.
 * Read only while reading ahead: a stream's first few events, never the rest.
 */
export function isMessagesPreamble(event: Buffer): boolean {
  const type = eventData(event)?.type;
  return type === 'message_start' || type === 'ping';
}
