import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse } from '../backends/backend.js';
import { responseStreamReplay } from '../backends/responses-translation/response-stream-replay.js';
import { replayAsStream } from '../cache/stream-replay.js';
import { clientWantsUsageChunk, type JsonDispatch } from './dispatch.js';
import { isJsonObject, jsonObjectOf } from './json-bytes.js';
import { type RelayOptions, readFirstEvent, relaySse, type SseOutcome } from './stream.js';
import { streamSurfaceOf } from './stream-surface.js';
import { StreamUsage, type TokenUsage } from './usage.js';

/**
 * ⑥ for an upstream that ignored `stream: true`: some OpenAI-compatible servers answer a streamed
 * chat or legacy completion with the whole answer as JSON. Relayed as it came, the SDKs read it as
 * an empty stream (no error, no content), so it goes to the client as the stream it asked for: the
 * one a cache hit of that answer is replayed as (stream-replay.ts). Only a 200 whose JSON is the
 * endpoint's answer object is turned; errors and anything else go back as they came.
 */

/** The answer object each streamable endpoint's JSON answer is. */
const ANSWER_OBJECT = { 'chat.completions': 'chat.completion', completions: 'text_completion' } as const;

/**
 * The SSE response to send instead of `body`, or undefined when the client did not ask for a
 * stream or `body` is not a whole answer. The usage chunk (when the client asked for it) is the
 * answer's own usage, else `counted()`, as for an upstream stream that carried none.
 */
export function ignoredStreamReplay(
  dispatch: JsonDispatch,
  response: BackendResponse,
  body: Buffer,
  counted: () => TokenUsage,
): BackendResponse | undefined {
  const { endpoint } = dispatch;
  if (!dispatch.stream || response.status !== 200) return undefined;
  if (endpoint === 'responses') {
    // A native Responses upstream's whole Response: replayed as the events that end in it.
    const answer = jsonObjectOf(body);
    const replayed = answer ? responseStreamReplay(answer) : undefined;
    if (!replayed) return undefined;
    const { 'content-length': _length, ...headers } = response.headers;
    return { status: 200, contentType: 'text/event-stream', headers, body: [replayed] };
  }
  if (endpoint !== 'chat.completions' && endpoint !== 'completions') return undefined;
  const answer = jsonObjectOf(body);
  if (answer?.object !== ANSWER_OBJECT[endpoint]) return undefined;
  const includeUsage = clientWantsUsageChunk(dispatch.body);
  const usage = isJsonObject(answer.usage) ? answer.usage : includeUsage ? counted() : undefined;
  // Describes the JSON bytes, not the stream's.
  const { 'content-length': _length, ...headers } = response.headers;
  return {
    status: 200,
    contentType: 'text/event-stream',
    headers,
    body: [replayAsStream({ ...answer, usage }, endpoint, { includeUsage })],
  };
}

/** Sends a replayed stream (held whole in memory) to the client, as any stream is relayed. */
export async function relayReplay(
  request: FastifyRequest,
  reply: FastifyReply,
  replay: BackendResponse,
  dispatch: JsonDispatch,
  relay: RelayOptions,
): Promise<SseOutcome> {
  const started = await readFirstEvent(replay, relay.keepAliveMs);
  return relaySse(request, reply, started, {
    ...relay,
    stripUsageChunk: false,
    usage: new StreamUsage(dispatch.endpoint),
    surface: streamSurfaceOf(dispatch.endpoint),
  });
}
