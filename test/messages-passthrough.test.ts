import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countTextTokens } from '../src/usage/token-counter.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, type RecordedRequest } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { newRequestId, recordOf, withRequestId } from './support/usage-records.js';

/**
 * Anthropic's Messages API end to end through a `type: anthropic` backend, which forwards rather
 * than rebuilds: the official SDK (and raw fetch, for bytes) -> the real gateway with auth on ->
 * fake Anthropic servers on 127.0.0.1 that record what arrives and answer with bytes written
 * here, so "as the client sent it" and "unchanged" are checked byte for byte both ways, and the
 * usage record is checked against figures no count of the gateway's would give.
 */

const KEY_A = 'sk-ant-backend-a-secret-0001';
const KEY_B = 'sk-ant-backend-b-secret-0002';
const UPSTREAM_MODEL = 'claude-sonnet-4-5';
/** What Claude Code sends; the backend is configured with another, which must lose. */
const CLIENT_VERSION = '2023-06-01';
const CONFIGURED_VERSION = '2099-12-31';
const CONFIGURED_BETA = 'gateway-configured-beta-2025-01-01';
/** Claude Code's beta list, as it sends it (comma-separated, no spaces). */
const CLIENT_BETAS = [
  'claude-code-20250219',
  'interleaved-thinking-2025-05-14',
  'fine-grained-tool-streaming-2025-05-14',
  'context-management-2025-06-27',
  'context-1m-2025-08-07',
  'token-efficient-tools-2025-02-19',
  'prompt-caching-scope-2026-01-05',
];

type Handler = (request: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/** A fake Anthropic: `/v1/messages` and `/v1/messages/count_tokens` answered by `handler`. */
class ScriptedAnthropic {
  readonly upstream = new FakeUpstream();
  handler: Handler = (_request, res) => {
    res.writeHead(500);
    res.end();
  };

  async start(): Promise<string> {
    this.upstream.on('POST', '/v1/messages', (request, res) => this.handler(request, res));
    this.upstream.on('POST', '/v1/messages/count_tokens', (request, res) => this.handler(request, res));
    return this.upstream.start();
  }

  get requests(): RecordedRequest[] {
    return this.upstream.requests;
  }

  last(): RecordedRequest {
    const request = this.requests.at(-1);
    if (!request) throw new Error('the fake Anthropic saw no request');
    return request;
  }
}

/** Answers with exactly these bytes. */
function answerWith(status: number, bytes: Buffer, headers: Record<string, string> = {}): Handler {
  return (_request, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(bytes);
  };
}

/** Streams exactly these parts, one write each. */
function streamWith(parts: readonly Buffer[]): Handler {
  return (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    for (const part of parts) res.write(part);
    res.end();
  };
}

/** One SSE event as Anthropic frames it; `data` is written as given, spacing and key order included. */
function frame(type: string, data: string): string {
  return `event: ${type}\ndata: ${data}\n\n`;
}

const anthropicA = new ScriptedAnthropic();
const anthropicB = new ScriptedAnthropic();
let gw: TestGateway;
let admin: AdminHttp;
let teamKey = '';
let client: Anthropic;

beforeAll(async () => {
  const [urlA, urlB] = await Promise.all([anthropicA.start(), anthropicB.start()]);
  const noCircuit = { enabled: false };
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: {
      'anthropic-a': {
        type: 'anthropic',
        baseUrl: urlA,
        apiKey: KEY_A,
        anthropicVersion: CONFIGURED_VERSION,
        betas: [CONFIGURED_BETA],
      },
      'anthropic-b': { type: 'anthropic', baseUrl: urlB, apiKey: KEY_B },
    },
    models: {
      'claude-code-model': { backend: 'anthropic-a', model: UPSTREAM_MODEL },
      // One deployment, one attempt: what the client gets is what the one upstream said.
      'claude-single': {
        backend: 'anthropic-a',
        model: UPSTREAM_MODEL,
        retry: { attempts: 1 },
        circuit: noCircuit,
      },
      // A first, B when A fails.
      'claude-pair': {
        strategy: 'priority',
        deployments: [
          { backend: 'anthropic-a', model: UPSTREAM_MODEL, priority: 0 },
          { backend: 'anthropic-b', model: UPSTREAM_MODEL, priority: 1 },
        ],
        retry: { attempts: 2 },
        circuit: noCircuit,
      },
    },
  });
  admin = new AdminHttp(gw.url);
  teamKey = await admin.teamKey();
  client = sdk();
});

beforeEach(() => {
  anthropicA.requests.length = 0;
  anthropicB.requests.length = 0;
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([anthropicA.upstream.stop(), anthropicB.upstream.stop()]);
});

function sdk(maxRetries = 0): Anthropic {
  return new Anthropic({
    baseURL: gw.url,
    apiKey: teamKey,
    maxRetries,
    // Set, so the SDK sends a non-streamed 32000-token request as Claude Code's settings allow.
    timeout: 60_000,
    defaultHeaders: { 'anthropic-version': CLIENT_VERSION },
  });
}

/** A raw POST as Claude Code makes it (x-api-key, its version and betas). */
function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: 'POST',
    ...(signal ? { signal } : {}),
    headers: {
      'content-type': 'application/json',
      'x-api-key': teamKey,
      'anthropic-version': CLIENT_VERSION,
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

async function bytesOf(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

function pathOf(request: RecordedRequest): string {
  return request.url.split('?')[0] ?? '';
}

/** Nothing the fake saw (headers, body) carries the client's team key. */
function expectNoTeamKey(requests: readonly RecordedRequest[]): void {
  expect(requests.length).toBeGreaterThan(0);
  for (const request of requests) {
    expect(JSON.stringify(request.headers)).not.toContain(teamKey);
    expect(request.body.toString('utf8')).not.toContain(teamKey);
  }
}

const TOOL_NAMES = [
  'Task',
  'Bash',
  'Glob',
  'Grep',
  'Read',
  'Edit',
  'Write',
  'NotebookEdit',
  'WebFetch',
  'TodoWrite',
  'WebSearch',
  'ExitPlanMode',
];

/** What Claude Code sends, fields the gateway's schema has never heard of included. */
function claudeCodeBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'claude-code-model',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: '<system-reminder>context</system-reminder>' },
          { type: 'text', text: 'Fix the failing test, please ☕', cache_control: { type: 'ephemeral' } },
        ],
      },
    ],
    system: [
      {
        type: 'text',
        text: "You are Claude Code, Anthropic's official CLI for Claude.",
        cache_control: { type: 'ephemeral' },
      },
      { type: 'text', text: 'Work in /repo.', cache_control: { type: 'ephemeral', ttl: '1h' } },
    ],
    tools: TOOL_NAMES.map((name, index) => ({
      name,
      description: `The ${name} tool.`,
      input_schema: {
        type: 'object',
        properties: { arg: { type: 'string', description: 'an argument' } },
        required: ['arg'],
        additionalProperties: false,
        $schema: 'http://json-schema.org/draft-07/schema#',
      },
      ...(index === TOOL_NAMES.length - 1 ? { cache_control: { type: 'ephemeral' } } : {}),
    })),
    metadata: { user_id: 'user_abc123_account_def456_session_0f0e0d0c' },
    max_tokens: 32000,
    thinking: { type: 'enabled', budget_tokens: 31999 },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    output_config: { effort: 'high', future_knob: [1, null, { deep: true }] },
    temperature: 1,
    ...extra,
  };
}

/** The SDK takes the body as written; its types do not list every field Claude Code sends. */
function asParams(body: Record<string, unknown>): Anthropic.MessageCreateParamsNonStreaming {
  return body as unknown as Anthropic.MessageCreateParamsNonStreaming;
}

/** A JSON answer with odd spacing, escapes and fields no schema knows: all must survive. */
const JSON_ANSWER = Buffer.from(
  '{"model":"claude-sonnet-4-5","id":"msg_01JsonPassThrough" ,"type":"message","role":"assistant",' +
    '"content":[{"type":"text","text":"caf\\u00e9 ☕ fixed"}],"stop_reason":"end_turn","stop_sequence":null,' +
    '"usage":{"input_tokens":21,"cache_creation_input_tokens":50,"cache_read_input_tokens":100,' +
    '"output_tokens":17,"service_tier":"standard"},"container":{"id":"c_1","expires_at":"2099-01-01T00:00:00Z"}}',
);

const MESSAGE_START = frame(
  'message_start',
  '{"type":"message_start","message":{"model":"claude-sonnet-4-5","id":"msg_01StreamPassThrough","type":"message",' +
    '"role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,' +
    '"cache_creation_input_tokens":50,"cache_read_input_tokens":100,"output_tokens":1,"service_tier":"standard"}}}',
);
const PING = frame('ping', '{"type": "ping"}');
const TOOL_INPUT = { command: 'npm test', description: 'Run the tests' };

/**
 * A stream as Anthropic writes it: pings between events, text with a '€' whose bytes are cut
 * across two writes, a tool call in JSON pieces, then message_delta's output count.
 */
function streamParts(): Buffer[] {
  const euroDelta = Buffer.from(
    frame(
      'content_block_delta',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" costs 5€."}}',
    ),
  );
  const cut = euroDelta.indexOf(Buffer.from('€')) + 1;
  const toolPieces = ['{"command": ', '"npm test", "descr', 'iption": "Run the tests"}'];
  return [
    Buffer.from(MESSAGE_START),
    Buffer.from(
      PING +
        frame(
          'content_block_start',
          '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ) +
        frame(
          'content_block_delta',
          '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"The fix"}}',
        ),
    ),
    euroDelta.subarray(0, cut),
    euroDelta.subarray(cut),
    Buffer.from(
      frame('content_block_stop', '{"type":"content_block_stop","index":0}') +
        PING +
        frame(
          'content_block_start',
          '{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A","name":"Bash","input":{}}}',
        ) +
        toolPieces
          .map((piece) =>
            frame(
              'content_block_delta',
              JSON.stringify({
                type: 'content_block_delta',
                index: 1,
                delta: { type: 'input_json_delta', partial_json: piece },
              }),
            ),
          )
          .join('') +
        frame('content_block_stop', '{"type":"content_block_stop","index":1}') +
        frame(
          'message_delta',
          '{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":17}}',
        ) +
        frame('message_stop', '{"type":"message_stop"}'),
    ),
  ];
}

/** The message the SDK must assemble from streamParts(). */
const STREAMED_MESSAGE = {
  id: 'msg_01StreamPassThrough',
  type: 'message',
  role: 'assistant',
  model: UPSTREAM_MODEL,
  content: [
    { type: 'text', text: 'The fix costs 5€.' },
    { type: 'tool_use', id: 'toolu_01A', name: 'Bash', input: TOOL_INPUT },
  ],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: {
    input_tokens: 21,
    cache_creation_input_tokens: 50,
    cache_read_input_tokens: 100,
    output_tokens: 17,
    service_tier: 'standard',
  },
};

/** The event types of an SSE text, in order. */
function eventTypes(text: string): string[] {
  return [...text.matchAll(/^event: (.+)$/gm)].map((match) => match[1] ?? '');
}

function envelope(type: string, message: string, requestId: string): Buffer {
  return Buffer.from(
    `{"type":"error","error":{"type":"${type}","message":"${message}"},"request_id":"${requestId}"}`,
  );
}

const OVERLOADED = envelope('overloaded_error', 'Overloaded', 'req_fake_529');

describe('messages.create', () => {
  it('forwards the Claude Code body as sent but for the model, with the client’s version and betas and the backend’s key', async () => {
    anthropicA.handler = answerWith(200, JSON_ANSWER);
    const body = claudeCodeBody();
    const message = await client.messages.create(asParams(body), {
      headers: { 'anthropic-beta': CLIENT_BETAS.join(',') },
    });
    expect(message).toEqual(JSON.parse(JSON_ANSWER.toString('utf8')));

    expect(anthropicA.requests).toHaveLength(1);
    expect(anthropicB.requests).toHaveLength(0);
    const seen = anthropicA.last();
    expect(pathOf(seen)).toBe('/v1/messages');
    const expected = { ...body, model: UPSTREAM_MODEL };
    expect(seen.json).toEqual(expected);
    // Nothing added, dropped or reordered: the bytes are the client's body with one value changed.
    expect(seen.body.toString('utf8')).toBe(JSON.stringify(expected));
    expect(seen.headers['anthropic-version']).toBe(CLIENT_VERSION);
    expect(seen.headers['anthropic-beta']).toBe([...CLIENT_BETAS, CONFIGURED_BETA].join(','));
    expect(seen.headers['x-api-key']).toBe(KEY_A);
    expect(seen.headers.authorization).toBeUndefined();
    expectNoTeamKey(anthropicA.requests);
  });

  it('relays the JSON answer byte for byte', async () => {
    anthropicA.handler = answerWith(200, JSON_ANSWER);
    const response = await client.messages.create(asParams(claudeCodeBody())).asResponse();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('x-tollgate-backend')).toBe('anthropic-a');
    expect((await bytesOf(response)).equals(JSON_ANSWER)).toBe(true);
  });

  it('uses the configured version and betas when the client sends none', async () => {
    anthropicA.handler = answerWith(200, JSON_ANSWER);
    const body = claudeCodeBody();
    const response = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${teamKey}` },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    expect((await bytesOf(response)).equals(JSON_ANSWER)).toBe(true);
    const seen = anthropicA.last();
    expect(seen.headers['anthropic-version']).toBe(CONFIGURED_VERSION);
    expect(seen.headers['anthropic-beta']).toBe(CONFIGURED_BETA);
    expect(seen.headers['x-api-key']).toBe(KEY_A);
    expectNoTeamKey(anthropicA.requests);
  });
});

describe('streams', () => {
  it('relays a raw stream byte for byte: event lines, pings, order, a character cut across writes', async () => {
    const parts = streamParts();
    anthropicA.handler = streamWith(parts);
    const response = await post('/v1/messages', claudeCodeBody({ stream: true }), {
      'anthropic-beta': CLIENT_BETAS.join(','),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const received = await bytesOf(response);
    expect(received.toString('utf8')).toBe(Buffer.concat(parts).toString('utf8'));
    expect(received.equals(Buffer.concat(parts))).toBe(true);
    const seen = anthropicA.last();
    expect(seen.json).toEqual({ ...claudeCodeBody({ stream: true }), model: UPSTREAM_MODEL });
    expect(seen.headers.accept).toBe('text/event-stream');
    expect(seen.headers['anthropic-beta']).toBe([...CLIENT_BETAS, CONFIGURED_BETA].join(','));
    expectNoTeamKey(anthropicA.requests);
  });

  it('messages.stream: the SDK sees every event the fake sent and assembles the final message', async () => {
    const parts = streamParts();
    anthropicA.handler = streamWith(parts);
    const stream = client.messages.stream(asParams(claudeCodeBody()));
    const seenTypes: string[] = [];
    stream.on('streamEvent', (event) => seenTypes.push(event.type));
    const final = await stream.finalMessage();
    expect(final).toMatchObject(STREAMED_MESSAGE);
    // The SDK drops pings itself (the raw tests above see them); every other event, in order.
    const sent = eventTypes(Buffer.concat(parts).toString('utf8'));
    expect(sent.filter((type) => type === 'ping')).toHaveLength(2);
    expect(seenTypes).toEqual(sent.filter((type) => type !== 'ping'));
    expect(anthropicA.last().json?.stream).toBe(true);
  });

  it('messages.create with stream: true, as a raw response, is the fake’s bytes', async () => {
    const parts = streamParts();
    anthropicA.handler = streamWith(parts);
    const response = await client.messages
      .create({ ...asParams(claudeCodeBody()), stream: true })
      .asResponse();
    expect(response.status).toBe(200);
    expect((await bytesOf(response)).equals(Buffer.concat(parts))).toBe(true);
  });

  it('?beta=true (client.beta.messages): the stream, the betas and the final message', async () => {
    const parts = streamParts();
    anthropicA.handler = streamWith(parts);
    const stream = client.beta.messages.stream(
      {
        ...(claudeCodeBody() as unknown as Anthropic.Beta.Messages.MessageCreateParamsNonStreaming),
        betas: CLIENT_BETAS,
      },
      { query: { beta: 'true' } },
    );
    const final = await stream.finalMessage();
    expect(final).toMatchObject(STREAMED_MESSAGE);
    const seen = anthropicA.last();
    expect(pathOf(seen)).toBe('/v1/messages');
    expect(seen.headers['anthropic-beta']).toBe([...CLIENT_BETAS, CONFIGURED_BETA].join(','));
    expect(seen.json).toEqual({ ...claudeCodeBody({ stream: true }), model: UPSTREAM_MODEL });

    // The same as Claude Code sends it, read raw.
    anthropicA.handler = streamWith(streamParts());
    const response = await post('/v1/messages?beta=true', claudeCodeBody({ stream: true }), {
      'anthropic-beta': CLIENT_BETAS.join(','),
    });
    expect(response.status).toBe(200);
    expect((await bytesOf(response)).equals(Buffer.concat(parts))).toBe(true);
    expectNoTeamKey(anthropicA.requests);
  });
});

describe('count_tokens', () => {
  it('is forwarded to the upstream’s count_tokens and answered verbatim', async () => {
    const answer = Buffer.from(
      '{"input_tokens":  2095 ,"context_management":{"original_input_tokens":3000}}',
    );
    anthropicA.handler = answerWith(200, answer);
    const { max_tokens: _max, thinking: _thinking, metadata: _metadata, ...rest } = claudeCodeBody();
    const body = { ...rest, model: 'claude-code-model' };
    const counted = await client.messages.countTokens(body as unknown as Anthropic.MessageCountTokensParams, {
      headers: { 'anthropic-beta': CLIENT_BETAS.join(',') },
    });
    expect(counted).toEqual(JSON.parse(answer.toString('utf8')));
    const response = await client.messages
      .countTokens(body as unknown as Anthropic.MessageCountTokensParams)
      .asResponse();
    expect(response.status).toBe(200);
    expect((await bytesOf(response)).equals(answer)).toBe(true);

    expect(anthropicA.requests).toHaveLength(2);
    const seen = anthropicA.requests[0] as RecordedRequest;
    expect(pathOf(seen)).toBe('/v1/messages/count_tokens');
    expect(seen.body.toString('utf8')).toBe(JSON.stringify({ ...body, model: UPSTREAM_MODEL }));
    expect(seen.headers['x-api-key']).toBe(KEY_A);
    expect(seen.headers['anthropic-version']).toBe(CLIENT_VERSION);
    expect(seen.headers['anthropic-beta']).toBe([...CLIENT_BETAS, CONFIGURED_BETA].join(','));
    expectNoTeamKey(anthropicA.requests);
  });
});

/**
 * claude-sonnet-4-5 at the shipped list prices (USD per 1M tokens, src/usage/price-table.ts):
 * input 3, cache reads 0.3, cache writes (5 min) 3.75, output 15. Written out here, not read from
 * the table, so a change to the table or to how cost.ts applies it fails this suite.
 */
function sonnetCostUsd(usage: { input: number; reads: number; writes: number; output: number }): number {
  const micros = usage.input * 3 + usage.reads * 0.3 + usage.writes * 3.75 + usage.output * 15;
  return Math.round(micros) / 1_000_000;
}

describe('usage conformance', () => {
  /** prompt = 21 + 100 read + 50 written; the cost prices each part at its own rate. */
  const REPORTED = {
    prompt_tokens: 171,
    completion_tokens: 17,
    total_tokens: 188,
    cached_tokens: 100,
    reasoning_tokens: 0,
    estimated: false,
    unpriced: false,
  };
  // 21 x 3 + 100 x 0.3 + 50 x 3.75 + 17 x 15 = 535.5 micro-dollars.
  const REPORTED_COST = 536 / 1_000_000;

  it('a JSON answer is recorded with the cache reads and writes in the prompt, and priced apart', async () => {
    anthropicA.handler = answerWith(200, JSON_ANSWER);
    const id = newRequestId();
    const message = await client.messages.create(asParams(claudeCodeBody()), withRequestId(id));
    expect(message.usage).toMatchObject({
      input_tokens: 21,
      cache_read_input_tokens: 100,
      cache_creation_input_tokens: 50,
      output_tokens: 17,
    });
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({ ...REPORTED, model: 'claude-code-model', status: 200, stream: false });
    expect(record.cost_usd).toBe(REPORTED_COST);
    expect(sonnetCostUsd({ input: 21, reads: 100, writes: 50, output: 17 })).toBe(REPORTED_COST);
  });

  it('a stream is recorded from message_start and message_delta, the same as JSON', async () => {
    anthropicA.handler = streamWith(streamParts());
    const id = newRequestId();
    const final = await client.messages.stream(asParams(claudeCodeBody()), withRequestId(id)).finalMessage();
    expect(final.usage.output_tokens).toBe(17);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({ ...REPORTED, model: 'claude-code-model', status: 200, stream: true });
    expect(record.cost_usd).toBe(REPORTED_COST);
  });

  it('a client that leaves mid-stream is charged the prompt message_start reported and the output relayed', async () => {
    const deltas = ['The quick brown fox', ' jumps over the lazy dog', ' and then stops.'];
    const last = deltas.at(-1) ?? '';
    anthropicA.handler = (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      res.write(
        MESSAGE_START +
          PING +
          frame(
            'content_block_start',
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
          ) +
          deltas
            .map((text) =>
              frame(
                'content_block_delta',
                JSON.stringify({
                  type: 'content_block_delta',
                  index: 0,
                  delta: { type: 'text_delta', text },
                }),
              ),
            )
            .join(''),
      );
      // No message_delta, no end: held open until the gateway goes away.
    };
    const id = newRequestId();
    const controller = new AbortController();
    const response = await post(
      '/v1/messages',
      claudeCodeBody({ stream: true }),
      { 'x-request-id': id },
      controller.signal,
    );
    expect(response.status).toBe(200);
    const reader = response.body?.getReader();
    if (!reader) throw new Error('no body');
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes(JSON.stringify(last))) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended early: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    await anthropicA.upstream.waitForAbort();

    const relayed = countTextTokens(deltas.join(''));
    // More than message_start's output_tokens (1): the count, not the report, is what is charged.
    expect(relayed).toBeGreaterThan(1);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      prompt_tokens: 171,
      completion_tokens: relayed,
      total_tokens: 171 + relayed,
      cached_tokens: 100,
      estimated: true,
      stream: true,
    });
    expect(record.cost_usd).toBe(sonnetCostUsd({ input: 21, reads: 100, writes: 50, output: relayed }));
  });
});

describe('upstream errors', () => {
  it('a 400 invalid_request_error reaches the SDK as BadRequestError, and raw as the fake’s bytes', async () => {
    const bytes = envelope('invalid_request_error', 'messages.0.content: Field required', 'req_fake_400');
    anthropicA.handler = answerWith(400, bytes);
    const error = await client.messages.create(asParams(claudeCodeBody())).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const apiError = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect(apiError.status).toBe(400);
    expect(apiError.error).toEqual(JSON.parse(bytes.toString('utf8')));
    expect(apiError.message).toContain('messages.0.content: Field required');

    const response = await post('/v1/messages', claudeCodeBody());
    expect(response.status).toBe(400);
    expect((await bytesOf(response)).equals(bytes)).toBe(true);
    // Neither the gateway nor the SDK (maxRetries 0) retried the client's own mistake.
    expect(anthropicA.requests).toHaveLength(2);
  });

  it('529 overloaded from the first of two deployments: the gateway fails over, the client gets the second’s answer', async () => {
    anthropicA.handler = answerWith(529, OVERLOADED, { 'retry-after': '0' });
    anthropicB.handler = answerWith(200, JSON_ANSWER);
    const response = await post('/v1/messages', claudeCodeBody({ model: 'claude-pair' }));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-backend')).toBe('anthropic-b');
    expect((await bytesOf(response)).equals(JSON_ANSWER)).toBe(true);
    expect(anthropicA.requests).toHaveLength(1);
    expect(anthropicB.requests).toHaveLength(1);
    expect(anthropicB.last().headers['x-api-key']).toBe(KEY_B);
    expect(anthropicB.last().json?.model).toBe(UPSTREAM_MODEL);

    // The same for a stream: nothing of A's reached the client.
    const parts = streamParts();
    anthropicB.handler = streamWith(parts);
    const final = await client.messages
      .stream(asParams(claudeCodeBody({ model: 'claude-pair' })))
      .finalMessage();
    expect(final).toMatchObject(STREAMED_MESSAGE);
    expect(anthropicA.requests).toHaveLength(2);
    expect(anthropicB.requests).toHaveLength(2);
  });

  it('529 overloaded with one deployment: the client gets 529 overloaded_error', async () => {
    anthropicA.handler = answerWith(529, OVERLOADED);
    const response = await post('/v1/messages', claudeCodeBody({ model: 'claude-single' }));
    const text = (await bytesOf(response)).toString('utf8');
    expect({ status: response.status, body: JSON.parse(text) }).toMatchObject({
      status: 529,
      body: { type: 'error', error: { type: 'overloaded_error' } },
    });
    expect(anthropicA.requests).toHaveLength(1);
  });

  it('529 overloaded with one deployment: the SDK retries it (maxRetries 1: two upstream requests)', async () => {
    anthropicA.handler = answerWith(529, OVERLOADED);
    const error = await sdk(1)
      .messages.create(asParams(claudeCodeBody({ model: 'claude-single' })))
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    // The first try and one retry, each one upstream request (the model has one attempt).
    expect(anthropicA.requests).toHaveLength(2);
    expectNoTeamKey(anthropicA.requests);
  });

  it('an `event: error` (overloaded) as the first event fails over before any byte reaches the client', async () => {
    const errorEvent = Buffer.from(
      frame(
        'error',
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_fake_sse"}',
      ),
    );
    anthropicA.handler = streamWith([errorEvent]);
    const parts = streamParts();
    anthropicB.handler = streamWith(parts);
    const response = await post('/v1/messages', claudeCodeBody({ model: 'claude-pair', stream: true }));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-backend')).toBe('anthropic-b');
    expect((await bytesOf(response)).equals(Buffer.concat(parts))).toBe(true);
    expect(anthropicA.requests).toHaveLength(1);
    expect(anthropicB.requests).toHaveLength(1);
  });

  it('an `event: error` (overloaded) as the first event with one deployment is a 529 overloaded_error, not a 200', async () => {
    anthropicA.handler = streamWith([
      Buffer.from(
        frame(
          'error',
          '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_fake_sse"}',
        ),
      ),
    ]);
    const response = await post('/v1/messages', claudeCodeBody({ model: 'claude-single', stream: true }));
    const text = (await bytesOf(response)).toString('utf8');
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(text).not.toMatch(/^event:/m);
    expect({ status: response.status, body: JSON.parse(text) }).toMatchObject({
      status: 529,
      body: { type: 'error', error: { type: 'overloaded_error' } },
    });
    expect(anthropicA.requests).toHaveLength(1);
  });
});
