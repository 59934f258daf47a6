import type { ServerResponse } from 'node:http';
import type { Backend, BackendCall, BackendResponse, Endpoint } from '../../src/backends/backend.js';
import { withMessagesTranslation } from '../../src/backends/messages-translation/with-messages-translation.js';
import { OpenAICompatibleBackend } from '../../src/backends/openai-compatible/openai-compatible-backend.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { BackendConfig } from '../../src/config/schema.js';
import { EndpointNotSupportedError } from '../../src/errors.js';
import { anthropicErrorPayload } from '../../src/http/anthropic-error.js';
import { FakeUpstream, sendJson } from './fake-upstream.js';

type Json = Record<string, unknown>;

/** What the scripted chat upstream answers to one chat request. */
export type ChatScript =
  | { json: Json }
  | {
      chunks: Json[];
      /** Written after the chunks, as it is (framing tests). */
      raw?: string;
      /** `data: [DONE]` at the end (the default). */
      done?: boolean;
      /** After the chunks: held open, silent, until the client goes or `breakHeld()`. */
      hold?: boolean;
    }
  | { status: number; body: Json; headers?: Record<string, string> };

/** Chat endpoints only: listed, so a new endpoint never slips in. */
const CHAT_ENDPOINTS: ReadonlySet<Endpoint> = new Set<Endpoint>([
  'chat.completions',
  'completions',
  'embeddings',
]);

/**
 * The OpenAI-compatible adapter in front of a real HTTP chat upstream (FakeUpstream) that knows
 * nothing of the Messages API, as vLLM, Ollama or OpenAI itself: what the translation sits on.
 * Records every call made to it (the translated chat requests).
 */
export class ChatOnlyBackend implements Backend {
  readonly name: string;
  readonly type: string;
  readonly calls: BackendCall[] = [];

  constructor(private readonly inner: Backend) {
    this.name = inner.name;
    this.type = inner.type;
  }

  supports(endpoint: Endpoint): boolean {
    return CHAT_ENDPOINTS.has(endpoint);
  }

  send(call: BackendCall): Promise<BackendResponse> {
    this.calls.push(call);
    if (!this.supports(call.endpoint)) throw new EndpointNotSupportedError(call.endpoint, call.model);
    return this.inner.send(call);
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

  /** The body of the last chat request the translation made. */
  lastChatBody(): Json {
    const call = this.calls.at(-1);
    if (call?.kind !== 'json') throw new Error('no chat call was made');
    return call.body;
  }
}

/** A chat upstream whose next answers the test scripts; every request it got is recorded. */
export class ScriptedChatUpstream {
  readonly upstream = new FakeUpstream();
  private readonly scripts: Array<ChatScript | ((body: Json) => ChatScript)> = [];
  private held: ServerResponse[] = [];

  /** Queues the answer to the next chat request. */
  answer(script: ChatScript | ((body: Json) => ChatScript)): this {
    this.scripts.push(script);
    return this;
  }

  async start(): Promise<string> {
    this.upstream.on('POST', '/v1/chat/completions', async (request, response) => {
      const next = this.scripts.shift();
      if (!next) {
        sendJson(response, 500, { error: { message: 'no answer scripted', type: 'server_error' } });
        return;
      }
      const script = typeof next === 'function' ? next(request.json ?? {}) : next;
      if ('json' in script) sendJson(response, 200, script.json);
      else if ('status' in script) sendJson(response, script.status, script.body, script.headers);
      else {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const chunk of script.chunks) response.write(`data: ${JSON.stringify(chunk)}\n\n`);
        if (script.raw) response.write(script.raw);
        if (script.hold) {
          this.held.push(response);
          return;
        }
        if (script.done !== false) response.write('data: [DONE]\n\n');
        response.end();
      }
    });
    return this.upstream.start();
  }

  /** Breaks off every held answer mid-stream, as an upstream that crashed. */
  breakHeld(): void {
    for (const response of this.held) response.destroy();
    this.held = [];
  }

  stop(): Promise<void> {
    return this.upstream.stop();
  }
}

/** The OpenAI-compatible backend at `baseUrl`, chat only, and the same wrapped in the translation. */
export function chatOnlyMessagesBackend(baseUrl: string): { chat: ChatOnlyBackend; messages: Backend } {
  const config = parseConfig(
    { backends: { b: { type: 'openai', baseUrl: `${baseUrl}/v1` } }, models: {} },
    {},
    'test',
  ).backends.b as Extract<BackendConfig, { type: 'openai' }>;
  const chat = new ChatOnlyBackend(new OpenAICompatibleBackend('chat-only', config));
  return { chat, messages: withMessagesTranslation(chat) };
}

/** A chunk of a chat stream, as OpenAI writes them. */
export function chatChunk(delta: Json, extra: Json = {}): Json {
  return {
    id: 'chatcmpl-abc123',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-test',
    choices: [{ index: 0, delta, finish_reason: null, ...extra }],
  };
}

/** The usage chunk that ends a chat stream asked for with include_usage. */
export function usageChunk(usage: Json): Json {
  return {
    id: 'chatcmpl-abc123',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-test',
    choices: [],
    usage,
  };
}

/** The body of an answer as bytes, read whole. */
export async function bodyText(response: BackendResponse): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of response.body) parts.push(Buffer.from(part));
  return Buffer.concat(parts).toString('utf8');
}

/** The events of an Anthropic SSE body: `event:` name and parsed data, in order. */
export function anthropicEvents(text: string): Array<{ event: string; data: Json }> {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((line) => line.startsWith('event: '))?.slice(7) ?? '';
      const data = lines.find((line) => line.startsWith('data: '))?.slice(6) ?? 'null';
      return { event, data: JSON.parse(data) as Json };
    });
}

/**
 * A `fetch` for the official Anthropic SDK that serves `POST /v1/messages` with `backend`, in
 * process: the body to a `messages` call, the answer (JSON or SSE) back as the response, and
 * every failure in Anthropic's shape through http/anthropic-error.ts. `calls` counts requests
 * (retries included).
 */
export function messagesFetch(backend: Backend): { fetch: typeof fetch; calls: () => number } {
  let calls = 0;
  const serve = async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls++;
    try {
      const body = JSON.parse(String(init?.body)) as Json;
      const answer = await backend.send({
        kind: 'json',
        endpoint: 'messages',
        model: String(body.model),
        signal: init?.signal ?? new AbortController().signal,
        requestId: `req_${calls}`,
        body,
        stream: body.stream === true,
      });
      const stream = ReadableStream.from(
        (async function* () {
          for await (const part of answer.body) yield new Uint8Array(part);
        })(),
      );
      return new Response(stream, {
        status: answer.status,
        headers: { ...answer.headers, 'content-type': answer.contentType },
      });
    } catch (error) {
      const payload = anthropicErrorPayload(error, 1024 * 1024, { requestId: `req_${calls}` });
      const text = Buffer.isBuffer(payload.body)
        ? payload.body.toString('utf8')
        : JSON.stringify(payload.body);
      return new Response(text, {
        status: payload.status,
        headers: { ...payload.headers, 'content-type': 'application/json' },
      });
    }
  };
  return { fetch: serve as typeof fetch, calls: () => calls };
}
