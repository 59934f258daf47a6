import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AnthropicBackend } from '../src/backends/anthropic/anthropic-backend.js';
import type { BackendResponse, JsonCall, JsonEndpoint } from '../src/backends/backend.js';
import { ClientAbortedError } from '../src/backends/transport-failure.js';
import { parseConfig } from '../src/config/load-config.js';
import type { BackendConfig } from '../src/config/schema.js';
import {
  ServiceUnavailableError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../src/errors.js';
import { anthropicErrorPayload } from '../src/http/anthropic-error.js';
import { isRetryable } from '../src/pipeline/attempts.js';
import { FakeUpstream, type RecordedRequest } from './support/fake-upstream.js';

/**
 * `type: anthropic` serving Anthropic's own Messages API by pass-through: the backend called
 * directly against a fake Anthropic on 127.0.0.1 that records what arrives and answers with bytes
 * the test wrote, so "unchanged" is checked byte for byte both ways.
 */

const KEY = 'sk-ant-passthrough-secret-7';
const UPSTREAM_MODEL = 'claude-sonnet-4-5-20250929';

type Handler = (request: RecordedRequest, res: ServerResponse) => void | Promise<void>;

const upstream = new FakeUpstream();
let baseUrl = '';
let handler: Handler = (_request, res) => {
  res.end();
};
const backends: AnthropicBackend[] = [];

beforeAll(async () => {
  upstream.on('POST', '/v1/messages', (request, res) => handler(request, res));
  upstream.on('POST', '/v1/messages/count_tokens', (request, res) => handler(request, res));
  baseUrl = await upstream.start();
});

afterEach(() => {
  upstream.requests.length = 0;
});

afterAll(async () => {
  await Promise.all(backends.map((backend) => backend.close()));
  await upstream.stop();
});

function makeBackend(extra: Record<string, unknown> = {}): AnthropicBackend {
  const config = parseConfig(
    {
      backends: {
        b: {
          type: 'anthropic',
          baseUrl,
          apiKey: KEY,
          anthropicVersion: '2023-06-01',
          betas: ['configured-beta-2025-01-01', 'shared-beta-2025-02-02'],
          ...extra,
        },
      },
      models: {},
    },
    {},
    'test',
  );
  const backend = new AnthropicBackend(
    'b',
    config.backends.b as Extract<BackendConfig, { type: 'anthropic' }>,
  );
  backends.push(backend);
  return backend;
}

function messagesCall(
  body: Record<string, unknown>,
  options: {
    endpoint?: JsonEndpoint;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): JsonCall {
  return {
    kind: 'json',
    endpoint: options.endpoint ?? 'messages',
    model: UPSTREAM_MODEL,
    body,
    stream: body.stream === true,
    signal: options.signal ?? new AbortController().signal,
    requestId: 'req-test-1',
    ...(options.headers ? { headers: options.headers } : {}),
  };
}

async function collect(response: BackendResponse): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of response.body) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Answers with exactly these bytes. */
function answerWith(status: number, bytes: Buffer, headers: Record<string, string> = {}): Handler {
  return (_request, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(bytes);
  };
}

function envelope(type: string, message: string): Buffer {
  return Buffer.from(
    `{"type":"error","error":{"type":"${type}","message":"${message}"},"request_id":"req_011"}`,
  );
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

const simpleAnswer = Buffer.from('{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":1}}');

describe('supports', () => {
  it('serves messages and messages.count_tokens besides the translated chat endpoints', () => {
    const backend = makeBackend();
    expect(backend.supports('messages')).toBe(true);
    expect(backend.supports('messages.count_tokens')).toBe(true);
    expect(backend.supports('chat.completions')).toBe(true);
    expect(backend.supports('embeddings')).toBe(false);
  });
});

describe('the request as Anthropic receives it', () => {
  it('is the client body as written: unknown fields intact, the model as the gateway rewrote it', async () => {
    handler = answerWith(200, simpleAnswer);
    const body = {
      model: UPSTREAM_MODEL,
      max_tokens: 1024,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral', ttl: '1h' } }],
      messages: [
        {
          role: 'user',
          content: [{ type: 'text', text: 'héllo', cache_control: { type: 'ephemeral' } }],
        },
      ],
      thinking: { type: 'enabled', budget_tokens: 2048 },
      context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] },
      output_config: { effort: 'medium', future_knob: [1, null, { deep: true }] },
      metadata: { user_id: 'u-1' },
    };
    await collect(await makeBackend().send(messagesCall(body)));
    const request = upstream.requests.at(-1);
    expect(request?.url).toBe('/v1/messages');
    expect(request?.json).toEqual(body);
    // Nothing added, dropped or reordered: the bytes are the body serialised as it came.
    expect(request?.body.toString('utf8')).toBe(JSON.stringify(body));
  });

  it("carries the backend's key, the client's version, and the client's betas then the configured ones", async () => {
    handler = answerWith(200, simpleAnswer);
    await collect(
      await makeBackend().send(
        messagesCall(
          { model: UPSTREAM_MODEL, max_tokens: 10, messages: [] },
          {
            headers: {
              'anthropic-version': '2099-12-31',
              'anthropic-beta': 'client-beta-1, shared-beta-2025-02-02,client-beta-1',
              // Never in a JsonCall by contract; if one slipped in, it must not go upstream.
              authorization: 'Bearer client-team-key',
              'x-api-key': 'client-team-key',
            },
          },
        ),
      ),
    );
    const headers = upstream.requests.at(-1)?.headers ?? {};
    expect(headers['x-api-key']).toBe(KEY);
    expect(headers['anthropic-version']).toBe('2099-12-31');
    expect(headers['anthropic-beta']).toBe('client-beta-1,shared-beta-2025-02-02,configured-beta-2025-01-01');
    expect(headers['content-type']).toBe('application/json');
    expect(headers.authorization).toBeUndefined();
    expect(JSON.stringify(headers)).not.toContain('client-team-key');
  });

  it('falls back to the configured version and betas when the client sent none', async () => {
    handler = answerWith(200, simpleAnswer);
    await collect(
      await makeBackend().send(messagesCall({ model: UPSTREAM_MODEL, max_tokens: 10, messages: [] })),
    );
    const headers = upstream.requests.at(-1)?.headers ?? {};
    expect(headers['anthropic-version']).toBe('2023-06-01');
    expect(headers['anthropic-beta']).toBe('configured-beta-2025-01-01,shared-beta-2025-02-02');
    expect(headers.accept).not.toBe('text/event-stream');
  });

  it('uses a key from the pool when the backend has apiKeys', async () => {
    handler = answerWith(200, simpleAnswer);
    const backend = makeBackend({ apiKey: undefined, apiKeys: [{ key: 'sk-ant-pool-key-one' }] });
    await collect(await backend.send(messagesCall({ model: UPSTREAM_MODEL, max_tokens: 1, messages: [] })));
    expect(upstream.requests.at(-1)?.headers['x-api-key']).toBe('sk-ant-pool-key-one');
  });
});

describe('answers', () => {
  it('relays a JSON answer byte for byte', async () => {
    // Odd spacing, key order, escapes and fields no schema knows: all must survive.
    const bytes = Buffer.from(
      '{ "type":"message","id":"msg_01X" ,"role":"assistant","content":[{"type":"text","text":"caf\\u00e9 ☕"}],' +
        '"container":{"id":"c1"},"usage":{"input_tokens":12,"output_tokens":3,"server_tool_use":{"web_search_requests":1}}}',
    );
    handler = answerWith(200, bytes);
    const response = await makeBackend().send(
      messagesCall({ model: UPSTREAM_MODEL, max_tokens: 10, messages: [] }),
    );
    expect(response.status).toBe(200);
    expect(response.contentType).toBe('application/json');
    expect(response.headers).toEqual({});
    expect((await collect(response)).equals(bytes)).toBe(true);
  });

  it('relays a stream byte for byte, as it arrives (event lines, pings, a character split across chunks)', async () => {
    const parts = [
      Buffer.from(
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5}}}\n\n',
      ),
      Buffer.from('event: ping\ndata: {"type": "ping"}\n\n'),
      Buffer.from(
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf',
      ),
    ];
    const euro = Buffer.from('€"}}\n\n');
    // The 3-byte '€' cut after its first byte.
    parts.push(euro.subarray(0, 1), euro.subarray(1));
    parts.push(
      Buffer.from(
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n' +
          'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      ),
    );
    let firstSeen: () => void = () => {};
    const clientHasFirst = new Promise<void>((resolve) => {
      firstSeen = resolve;
    });
    handler = async (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      res.write(parts[0]);
      // The rest only once the first bytes reached the caller: a buffering backend never gets here.
      await clientHasFirst;
      for (const part of parts.slice(1)) res.write(part);
      res.end();
    };
    const response = await makeBackend().send(
      messagesCall({ model: UPSTREAM_MODEL, max_tokens: 10, messages: [], stream: true }),
    );
    expect(response.contentType).toBe('text/event-stream; charset=utf-8');
    expect(upstream.requests.at(-1)?.headers.accept).toBe('text/event-stream');
    const received: Buffer[] = [];
    for await (const chunk of response.body) {
      received.push(chunk);
      firstSeen();
    }
    expect(Buffer.concat(received).equals(Buffer.concat(parts))).toBe(true);
  });

  it('forwards count_tokens and relays its answer verbatim', async () => {
    const bytes = Buffer.from('{"input_tokens":  2095, "context_management":{"original_input_tokens":3000}}');
    handler = answerWith(200, bytes);
    const body = {
      model: UPSTREAM_MODEL,
      messages: [{ role: 'user', content: 'How many tokens?' }],
      tools: [{ name: 't', input_schema: { type: 'object' } }],
    };
    const response = await makeBackend().send(messagesCall(body, { endpoint: 'messages.count_tokens' }));
    expect((await collect(response)).equals(bytes)).toBe(true);
    const request = upstream.requests.at(-1);
    expect(request?.url).toBe('/v1/messages/count_tokens');
    expect(request?.json).toEqual(body);
    expect(request?.headers['x-api-key']).toBe(KEY);
  });

  it('fails a stream request answered with JSON', async () => {
    handler = answerWith(200, simpleAnswer);
    const error = await failureOf(
      makeBackend().send(messagesCall({ model: UPSTREAM_MODEL, max_tokens: 1, messages: [], stream: true })),
    );
    expect(error).toBeInstanceOf(UpstreamError);
  });
});

describe('upstream errors', () => {
  const call = () => messagesCall({ model: UPSTREAM_MODEL, max_tokens: 1, messages: [] });

  it("relays the client's own 400 as the upstream wrote it, for the Anthropic surface to pass on", async () => {
    const bytes = envelope('invalid_request_error', 'messages.0.content: Field required');
    handler = answerWith(400, bytes);
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(UpstreamClientError);
    const clientError = error as UpstreamClientError;
    expect(clientError.status).toBe(400);
    expect(clientError.upstreamBody.equals(bytes)).toBe(true);
    expect(isRetryable(error)).toBe(false);
    const payload = anthropicErrorPayload(error, 1024 * 1024);
    expect(payload.status).toBe(400);
    expect(Buffer.isBuffer(payload.body) && payload.body.equals(bytes)).toBe(true);
  });

  it("scrubs the gateway's key from a relayed error that echoes it", async () => {
    handler = answerWith(404, envelope('not_found_error', `model not found for key ${KEY}`));
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(UpstreamClientError);
    const clientError = error as UpstreamClientError;
    expect(clientError.status).toBe(404);
    expect(clientError.upstreamBody.toString('utf8')).toBe(
      envelope('not_found_error', 'model not found for key [redacted]').toString('utf8'),
    );
  });

  it('relays a 429 with its retry headers, and routing may retry it', async () => {
    const bytes = envelope('rate_limit_error', 'Number of request tokens has exceeded your rate limit.');
    handler = answerWith(429, bytes, { 'retry-after': '7', 'x-should-retry': 'true' });
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(UpstreamClientError);
    const clientError = error as UpstreamClientError;
    expect(clientError.status).toBe(429);
    expect(clientError.upstreamBody.equals(bytes)).toBe(true);
    expect(clientError.headers).toEqual({ 'retry-after': '7', 'x-should-retry': 'true' });
    expect(isRetryable(error)).toBe(true);
  });

  it('maps 529 overloaded to a retryable ServiceUnavailableError', async () => {
    handler = answerWith(529, envelope('overloaded_error', 'Overloaded'), { 'retry-after': '3' });
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as ServiceUnavailableError).headers['retry-after']).toBe('3');
    expect(isRetryable(error)).toBe(true);
  });

  it.each([
    [401, 'authentication_error', 'invalid x-api-key'],
    [402, 'billing_error', 'Your credit balance is too low'],
  ])("maps %i (the gateway's credentials or account) to a retryable 502", async (status, type, message) => {
    handler = answerWith(status, envelope(type, `${message} ${KEY}`));
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).status).toBe(502);
    expect((error as Error).message).not.toContain(KEY);
    expect(isRetryable(error)).toBe(true);
  });

  it('maps a 500 to a retryable 502', async () => {
    handler = answerWith(500, envelope('api_error', 'Internal server error'));
    const error = await failureOf(makeBackend().send(call()));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(isRetryable(error)).toBe(true);
  });

  it('tells the key pool: a 429 rests the key, a 401 takes it out', async () => {
    const backend = makeBackend({
      apiKey: undefined,
      apiKeys: [{ key: 'sk-ant-pool-key-one' }, { key: 'sk-ant-pool-key-two' }],
    });
    handler = (request, res) => {
      const refused = request.headers['x-api-key'] === 'sk-ant-pool-key-one';
      res.writeHead(refused ? 401 : 429, { 'content-type': 'application/json', 'retry-after': '30' });
      res.end(refused ? envelope('authentication_error', 'invalid') : envelope('rate_limit_error', 'slow'));
    };
    // Each answer takes the key it was sent with out of use, so two calls use both keys.
    await failureOf(backend.send(call()));
    await failureOf(backend.send(call()));
    const states = backend.keyPool() ?? [];
    expect(states[0]).toMatchObject({ state: 'disabled', refusedWith: 401 });
    expect(states[1]).toMatchObject({ state: 'cooling' });
    const sent = upstream.requests.length;
    const error = await failureOf(backend.send(call()));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(upstream.requests.length).toBe(sent);
  });
});

describe('aborts, timeouts and broken streams', () => {
  const streamCall = (signal?: AbortSignal) =>
    messagesCall(
      { model: UPSTREAM_MODEL, max_tokens: 1, messages: [], stream: true },
      signal ? { signal } : {},
    );
  const firstEvent = 'event: message_start\ndata: {"type":"message_start"}\n\n';

  /** Sends the first event, then holds the stream open until the other side goes away. */
  const holdOpen: Handler = (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(firstEvent);
  };

  it('ends the upstream request when the client goes away mid-stream', async () => {
    handler = holdOpen;
    const client = new AbortController();
    const response = await makeBackend().send(streamCall(client.signal));
    const iterator = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(firstEvent.startsWith(first.value?.toString('utf8') ?? '-')).toBe(true);
    const next = expect(iterator.next()).rejects.toBeInstanceOf(ClientAbortedError);
    client.abort();
    await upstream.waitForAbort();
    await next;
  });

  it('maps a connection broken mid-stream to an UpstreamError', async () => {
    handler = (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(firstEvent, () => res.destroy());
    };
    const response = await makeBackend().send(streamCall());
    const error = await failureOf(collect(response));
    expect(error).toBeInstanceOf(UpstreamError);
  });

  it('ends a stream that outlives the total timeout with an UpstreamTimeoutError', async () => {
    handler = holdOpen;
    const backend = makeBackend({ timeouts: { totalMs: 50 } });
    // Before or after the stream started, whichever a slow machine makes it: the same error.
    const error = await failureOf(backend.send(streamCall()).then(collect));
    expect(error).toBeInstanceOf(UpstreamTimeoutError);
    await upstream.waitForAbort();
  });
});
