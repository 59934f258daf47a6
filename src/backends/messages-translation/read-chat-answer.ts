import { UpstreamError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import type { BackendResponse } from '../backend.js';

/** A chat answer is read whole before it is translated; past this the upstream is misbehaving. */
const MAX_CHAT_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * A chat answer read whole: the completion, or the error an upstream answered with a 200 instead
 * of one (`{"error":{...}}`, TGI's bare message beside its `error_type`), alone.
 */
export type ChatAnswer = { completion: Json; error?: undefined } | { error: Json };

/** A JSON chat answer, read whole and parsed; anything else is the upstream failing. */
export async function readChatAnswer(body: BackendResponse['body']): Promise<ChatAnswer> {
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
  if (Array.isArray(parsed.choices) || parsed.error === undefined) return { completion: parsed };
  const error = errorAnswerOf(parsed);
  if (error) return { error };
  // Some servers answer a failure with 200 and an error body: a failure, not an empty message.
  throw new UpstreamError('The upstream answered 200 with an error.');
}

/**
 * The error of an answer that is one, as the body the gateway reads as an error (pipeline/
 * in-band-error.ts `jsonAnswerError`: the status it stands for, 502 when it says none), so a
 * translated request fails as the same answer to a chat completions request does. Only what that
 * reading takes for an error (an object saying a message, type or code; a non-empty string); the
 * rest of the answer is left behind, which could make it read as an answer.
 */
function errorAnswerOf(answer: Json): Json | undefined {
  const { error } = answer;
  if (typeof error === 'string' && error !== '')
    return typeof answer.error_type === 'string' ? { error, error_type: answer.error_type } : { error };
  if (!isObject(error) || [error.message, error.type, error.code].every((field) => field === undefined))
    return undefined;
  return { error };
}
