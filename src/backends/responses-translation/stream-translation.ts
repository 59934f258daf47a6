import { GatewayError, UpstreamError } from '../../errors.js';
import { isObject, type Json } from '../../json-values.js';
import type { BackendResponse } from '../backend.js';
import { SseDataReader } from '../sse-data-reader.js';
import { encodeEvent } from '../sse-encoder.js';
import type { ChatParamPaths } from './chat-param-paths.js';
import { ChatStreamTranslator, type ResponsesEvent } from './chat-stream-translator.js';
import type { UsageCount } from './usage-count.js';

function encode(events: ResponsesEvent[]): Buffer | undefined {
  if (events.length === 0) return undefined;
  return Buffer.from(events.map((event) => encodeEvent(event.data, event.type)).join(''));
}

/** What a client may read of a failure: the gateway's own words, never a cause's internals. */
function failureMessage(error: unknown): string {
  return error instanceof GatewayError ? error.message : "The backend's stream failed.";
}

/** A chunk's JSON; anything that is not a JSON object carries nothing to translate. */
function parse(data: string): Json | undefined {
  try {
    const parsed: unknown = JSON.parse(data);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** What one chat stream's events became: Responses events, and whether an error ended it. */
interface Translated {
  out: Buffer | undefined;
  /** The stream failed after it started: rethrown once `out` is written. */
  error?: unknown;
  /** The chat stream was an error before anything: `out` is its `error` event, the whole answer. */
  ended?: boolean;
}

function translate(data: string[], translator: ChatStreamTranslator, paths?: ChatParamPaths): Translated {
  const events: ResponsesEvent[] = [];
  try {
    for (const item of data) {
      if (item.trim() === '[DONE]') {
        translator.done();
        continue;
      }
      const payload = parse(item);
      if (!payload) continue;
      if (isObject(payload.error)) {
        // As the Responses API's `error` event, which the gateway's read-ahead turns into the
        // answer's status when it comes first (so a 4xx stays a 4xx, a 429 may be retried).
        if (!translator.hasStarted) return { out: encode(translator.errorEvent(payload.error)), ended: true };
        const said = typeof payload.error.message === 'string' ? payload.error.message : '';
        const message = (paths ? paths.text(said) : said).slice(0, 200);
        throw new UpstreamError(`The backend's stream failed${message ? `: ${message}` : '.'}`);
      }
      events.push(...translator.chunk(payload));
    }
    return { out: encode(events) };
  } catch (error) {
    return { out: encode(events), error };
  }
}

/**
 * A chat completions SSE stream as a Responses API stream. Nothing is written before the first
 * chat chunk arrives, so a backend that fails at once fails the request as a normal error. A
 * failure after that ends the stream with `response.failed`, then is rethrown so that the
 * gateway counts the stream as failed: a timeout or a lost connection of the backend's stream,
 * an error chunk, and a stream that stopped before it said it was over (no finish_reason, no
 * `[DONE]`), whose answer is cut short however cleanly its connection closed. With `paths` (the
 * translated request's), an error the chat stream carries names the client's parameters.
 */
export async function* responsesStreamOf(
  chat: BackendResponse['body'],
  body: Json,
  model: string,
  count: UsageCount,
  paths?: ChatParamPaths,
): AsyncGenerator<Buffer> {
  const translator = new ChatStreamTranslator(body, model, count, paths);
  const reader = new SseDataReader();
  try {
    for await (const chunk of chat) {
      const { out, error, ended } = translate(reader.push(chunk), translator, paths);
      if (out) yield out;
      if (error) throw error;
      if (ended) return;
    }
    const { out, error, ended } = translate(reader.end(), translator, paths);
    if (out) yield out;
    if (error) throw error;
    if (ended) return;
    if (!translator.saidItEnded)
      throw new UpstreamError(
        "The backend's stream ended before it said it was finished (no finish_reason).",
      );
  } catch (error) {
    if (!translator.hasStarted) throw error;
    const failed = encode(translator.fail(failureMessage(error)));
    if (failed) yield failed;
    throw error;
  }
  const done = encode(translator.finish());
  if (done) yield done;
}

/**
 * A whole chat completion (from a backend that answered a stream request with JSON) as a
 * Responses API stream: the answer as one chunk, then the end.
 */
export function responsesStreamOfCompletion(
  completion: unknown,
  body: Json,
  model: string,
  count: UsageCount,
  paths?: ChatParamPaths,
): Buffer[] {
  const translator = new ChatStreamTranslator(body, model, count, paths);
  const answer = isObject(completion) ? completion : {};
  const choice = Array.isArray(answer.choices) ? answer.choices[0] : undefined;
  if (!isObject(choice) || !isObject(choice.message))
    throw new UpstreamError('The backend answered without a chat completion choice.');
  const message = choice.message;
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  const chunk = {
    ...answer,
    choices: [
      {
        index: 0,
        delta: {
          content: message.content,
          ...(Array.isArray(message.thinking_blocks) ? { thinking_blocks: message.thinking_blocks } : {}),
          tool_calls: calls.map((call, index) => (isObject(call) ? { ...call, index } : call)),
        },
        finish_reason: choice.finish_reason,
      },
    ],
  };
  return [translator.chunk(chunk), translator.finish()].flatMap((events) => encode(events) ?? []);
}
