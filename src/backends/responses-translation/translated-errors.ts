import { GatewayError, UpstreamClientError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import type { ChatParamPaths } from './chat-param-paths.js';

/** An OpenAI error object (a chat body's `error`, an in-band error chunk's) renamed. */
export function responsesErrorObject(error: Json, paths: ChatParamPaths): Json {
  const renamed: Json = { ...error };
  if (typeof error.param === 'string') renamed.param = paths.param(error.param);
  if (typeof error.message === 'string') renamed.message = paths.text(error.message);
  return renamed;
}

/**
 * A chat answer that is an error and no completion, renamed; undefined for anything else. Some
 * OpenAI-compatible servers answer a failure with a 200 and `{"error":{...}}` (TGI with a bare
 * message). Passed on as it came, the gateway reads it as it reads that answer to a chat
 * completions request (pipeline/in-band-error.ts: the status the error stands for). One whose
 * error says nothing stays a completion without a choice, which fails the translation.
 */
export function chatErrorAnswer(answer: unknown, paths: ChatParamPaths): Json | undefined {
  if (!isObject(answer) || Array.isArray(answer.choices)) return undefined;
  const { error } = answer;
  if (typeof error === 'string' && error !== '') return { ...answer, error: paths.text(error) };
  if (!isObject(error) || [error.message, error.type, error.code].every((field) => field === undefined))
    return undefined;
  return { ...answer, error: responsesErrorObject(error, paths) };
}

/** An upstream's 4xx body, renamed when it is OpenAI's envelope; undefined when nothing changed. */
function renamedBody(body: Buffer, paths: ChatParamPaths): Buffer | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || !isObject(parsed.error)) return undefined;
  const error = responsesErrorObject(parsed.error, paths);
  if (error.param === parsed.error.param && error.message === parsed.error.message) return undefined;
  return Buffer.from(JSON.stringify({ ...parsed, error }));
}

/**
 * A client error the chat side raised for a translated request, in the Responses request's names
 * (chat-param-paths.ts): its `param` and the names its message quotes. Only 4xx errors name the
 * client's parameters; anything else, and an error that names none, is returned as it is.
 */
export function responsesErrorOf(error: unknown, paths: ChatParamPaths): unknown {
  if (!(error instanceof GatewayError) || error.status < 400 || error.status >= 500) return error;
  if (error instanceof UpstreamClientError) {
    const body = renamedBody(error.upstreamBody, paths);
    return body ? new UpstreamClientError(error.status, body, 'application/json', error.headers) : error;
  }
  const param = paths.param(error.param);
  const message = paths.text(error.message);
  if (param === error.param && message === error.message) return error;
  return error.with({ message, param });
}
