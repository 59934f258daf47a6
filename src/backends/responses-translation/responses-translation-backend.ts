import { UpstreamError } from '../../errors.js';
import type { Json } from '../../json-values.js';
import type { Backend, BackendCall, BackendResponse, Endpoint, JsonCall } from '../backend.js';
import { responseOfChatCompletion } from './answer-translation.js';
import { translateRequest } from './request-translation.js';
import { responsesStreamOf, responsesStreamOfCompletion } from './stream-translation.js';
import { chatErrorAnswer, responsesErrorOf } from './translated-errors.js';
import { UsageCount } from './usage-count.js';

/** No chat answer comes near this; a backend that sends without end must not fill our memory. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** Inner headers that describe the inner body, which the translated answer replaces. */
const BODY_HEADERS = new Set(['content-length', 'content-type', 'content-encoding', 'transfer-encoding']);

async function collect(body: BackendResponse['body']): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES)
      throw new UpstreamError(`The backend's answer is larger than ${MAX_ANSWER_BYTES} bytes.`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Lets go of a body that will not be read (its connection is released, not left waiting). */
async function discard(body: BackendResponse['body']): Promise<void> {
  const iterator = Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]();
  await iterator.return?.();
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new UpstreamError('The backend answered with a chat completion that is not JSON.', error);
  }
}

function relayedHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !BODY_HEADERS.has(name.toLowerCase())),
  );
}

/**
 * Gives `/v1/responses` to a backend that only speaks chat completions (an in-process model,
 * a user module, a local server without the endpoint): a `responses` call is translated to a
 * `chat.completions` call on the backend and its answer back, JSON or stream. Every other call
 * passes through untouched, so the gateway sees one backend with one more endpoint.
 */
export class ResponsesTranslationBackend implements Backend {
  readonly name: string;
  readonly type: string;
  readonly unavailableForMs?: () => number | undefined;

  constructor(readonly inner: Backend) {
    this.name = inner.name;
    this.type = inner.type;
    const unavailable = inner.unavailableForMs;
    if (unavailable) this.unavailableForMs = () => unavailable.call(inner);
  }

  supports(endpoint: Endpoint): boolean {
    if (endpoint === 'responses')
      return this.inner.supports('responses') || this.inner.supports('chat.completions');
    return this.inner.supports(endpoint);
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    // A backend may learn later that it has the endpoint itself (a local server's discovery).
    if (call.kind !== 'json' || call.endpoint !== 'responses' || this.inner.supports('responses'))
      return this.inner.send(call);
    return this.respond(call);
  }

  private async respond(call: JsonCall): Promise<BackendResponse> {
    const body: Json = call.body;
    // Only the anthropic backend reads reasoning items back (as `thinking_blocks`); others never see them.
    const { chat: chatRequest, paths } = translateRequest(body, call.model, call.stream, {
      thinkingBlocks: this.inner.type === 'anthropic',
    });
    const count = new UsageCount(body);
    const usageCounted = () => count.counted.usage;
    let chat: BackendResponse;
    try {
      chat = await this.inner.send({ ...call, endpoint: 'chat.completions', body: chatRequest });
    } catch (error) {
      // The backend refused the chat request: the client reads the names of the one it sent.
      throw responsesErrorOf(error, paths);
    }
    const headers = relayedHeaders(chat.headers);
    if (chat.contentType.startsWith('text/event-stream')) {
      if (call.stream) {
        return {
          status: chat.status,
          contentType: 'text/event-stream; charset=utf-8',
          headers,
          body: responsesStreamOf(chat.body, body, call.model, count, paths),
          usageCounted,
          // An in-process model knows what it used until a client that left stopped it: exact.
          partialUsage: chat.partialUsage,
        };
      }
      await discard(chat.body);
      throw new UpstreamError('The backend answered a request for JSON with a stream.');
    }
    const completion = parseJson(await collect(chat.body));
    // An error instead of a completion goes on as it came, in the client's names: the gateway
    // reads it as it reads the same answer to a chat completions request (its status, its error).
    const failed = chatErrorAnswer(completion, paths);
    if (failed) {
      return {
        status: chat.status,
        contentType: 'application/json',
        headers,
        body: [Buffer.from(JSON.stringify(failed))],
      };
    }
    if (call.stream) {
      return {
        status: chat.status,
        contentType: 'text/event-stream; charset=utf-8',
        headers,
        body: responsesStreamOfCompletion(completion, body, call.model, count, paths),
        usageCounted,
      };
    }
    return {
      status: chat.status,
      contentType: 'application/json',
      headers,
      body: [Buffer.from(JSON.stringify(responseOfChatCompletion(body, completion, call.model, count)))],
      usageCounted,
    };
  }

  listModels(signal: AbortSignal): Promise<string[]> {
    return this.inner.listModels(signal);
  }

  checkHealth(signal: AbortSignal): Promise<void> {
    return this.inner.checkHealth(signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The backend as the gateway registers it: with the Responses API translated to chat
 * completions when it has chat completions and lacks the Responses API itself.
 */
export function withResponsesTranslation(backend: Backend): Backend {
  if (backend.supports('responses') || !backend.supports('chat.completions')) return backend;
  return new ResponsesTranslationBackend(backend);
}
