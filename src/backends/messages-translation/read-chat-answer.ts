import { UpstreamError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import type { BackendResponse } from '../backend.js';

/** A chat answer is read whole before it is translated; past this the upstream is misbehaving. */
const MAX_CHAT_ANSWER_BYTES = 64 * 1024 * 1024;

/** A JSON chat answer, read whole and parsed; anything else is the upstream failing. */
export async function readChatAnswer(body: BackendResponse['body']): Promise<Json> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of body) {
    size += part.length;
    if (size > MAX_CHAT_ANSWER_BYTES) throw new UpstreamError('The upstream answer is larger than 64 MiB.');
    parts.push(part);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (cause) {
    throw new UpstreamError('The upstream answered with JSON the gateway could not parse.', cause);
  }
  if (!isObject(parsed)) throw new UpstreamError('The upstream answered with JSON that is not an object.');
  // Some servers answer a failure with 200 and an error body: a failure, not an empty message.
  if (!Array.isArray(parsed.choices) && parsed.error !== undefined) {
    const error = isObject(parsed.error) ? parsed.error : {};
    const message = typeof error.message === 'string' ? `: ${error.message.slice(0, 200)}` : '.';
    throw new UpstreamError(`The upstream answered 200 with an error${message}`);
  }
  return parsed;
}
