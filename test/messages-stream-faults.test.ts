import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, type RecordedRequest } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';
import { pollUntil } from './support/poll.js';
import { newRequestId } from './support/usage-records.js';

/**
 * `/v1/messages` streams that fail, end to end: the Anthropic SDK (and raw fetch, for bytes) ->
 * the real gateway with auth and a budget -> fake Anthropic and OpenAI-compatible upstreams on
 * 127.0.0.1 that write the bytes scripted here. An error event must not carry the gateway's key
 * or its upstream's address to the client, a failed stream is recorded and charged as nothing
 * (as the refund says), an Anthropic error event before any content fails the attempt over, and
 * an upstream 403 is a 403 on both surfaces.
 */

const SECRET = 'sk-ant-SECRET-upstream-key';
const OTHER_KEY = 'sk-ant-other-upstream-key-2';
const UPSTREAM_MODEL = 'claude-sonnet-4-5';

type Handler = (request: RecordedRequest, res: ServerResponse) => void;

class ScriptedUpstream {
  readonly upstream = new FakeUpstream();
  handler: Handler = (_request, res) => {
    res.writeHead(500);
    res.end();
  };

  start(path: string): Promise<string> {
    this.upstream.on('POST', path, (request, res) => this.handler(request, res));
    return this.upstream.start();
  }

  get requests(): RecordedRequest[] {
    return this.upstream.requests;
  }
}

function frame(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

const MESSAGE_START = frame('message_start', {
  type: 'message_start',
  message: {
    id: 'msg_01Faults',
    type: 'message',
    role: 'assistant',
    model: UPSTREAM_MODEL,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 11, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 3 },
  },
});
const PING = frame('ping', '{"type": "ping"}');
const BLOCK_START = frame('content_block_start', {
  type: 'content_block_start',
  index: 0,
  content_block: { type: 'text', text: '' },
});
const delta = (text: string) =>
  frame('content_block_delta', {
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'text_delta', text },
  });
const errorEvent = (type: string, message: string) =>
  frame('error', { type: 'error', error: { type, message } });
/** A whole stream, as Anthropic ends one. */
const WHOLE = [
  MESSAGE_START,
  PING,
  BLOCK_START,
  delta('Hello'),
  delta(' there'),
  frame('content_block_stop', { type: 'content_block_stop', index: 0 }),
  frame('message_delta', {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: 2 },
  }),
  frame('message_stop', { type: 'message_stop' }),
].join('');

/** Writes these SSE parts, one write each, then ends. */
function streamWith(...parts: string[]): Handler {
  return (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    for (const part of parts) res.write(part);
    res.end();
  };
}

function jsonWith(status: number, body: string): Handler {
  return (_request, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  };
}

const claudeA = new ScriptedUpstream();
const claudeB = new ScriptedUpstream();
const chatServer = new ScriptedUpstream();
let upstreamAddress = '';
let gw: TestGateway;
let admin: AdminHttp;
let teamId = '';
let teamKey = '';

beforeAll(async () => {
  const [urlA, urlB, urlChat] = await Promise.all([
    claudeA.start('/v1/messages'),
    claudeB.start('/v1/messages'),
    chatServer.start('/v1/chat/completions'),
  ]);
  upstreamAddress = urlA;
  const noCircuit = { enabled: false };
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: {
      claude: { type: 'anthropic', baseUrl: urlA, apiKey: SECRET },
      'claude-b': { type: 'anthropic', baseUrl: urlB, apiKey: OTHER_KEY },
      oai: { type: 'openai', baseUrl: `${urlChat}/v1`, apiKey: 'sk-oai-upstream-key-3' },
    },
    models: {
      'claude-one': { backend: 'claude', model: UPSTREAM_MODEL, retry: { attempts: 1 }, circuit: noCircuit },
      'claude-pair': {
        strategy: 'priority',
        deployments: [
          { backend: 'claude', model: UPSTREAM_MODEL, priority: 0 },
          { backend: 'claude-b', model: UPSTREAM_MODEL, priority: 1 },
        ],
        retry: { attempts: 2 },
        circuit: noCircuit,
      },
      'claude-then-oai': {
        strategy: 'priority',
        deployments: [
          { backend: 'claude', model: UPSTREAM_MODEL, priority: 0 },
          { backend: 'oai', model: 'gpt-4o-mini', priority: 1 },
        ],
        retry: { attempts: 2 },
        circuit: noCircuit,
      },
      'gpt-one': { backend: 'oai', model: 'gpt-4o-mini', retry: { attempts: 1 }, circuit: noCircuit },
    },
  });
  admin = new AdminHttp(gw.url);
  const team = await admin.createTeam({
    name: 'stream-faults',
    budgets: [{ period: 'day', max_tokens: 10_000_000, max_usd: 1000 }],
  });
  teamId = team.id;
  teamKey = (await admin.createKey({ team_id: team.id })).key;
});

beforeEach(() => {
  for (const upstream of [claudeA, claudeB, chatServer]) upstream.requests.length = 0;
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([claudeA, claudeB, chatServer].map((upstream) => upstream.upstream.stop()));
});

function anthropic(): Anthropic {
  return new Anthropic({ baseURL: gw.url, apiKey: teamKey, maxRetries: 0 });
}

function messages(body: Record<string, unknown>, requestId = newRequestId()): Promise<Response> {
  return fetch(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': teamKey,
      'anthropic-version': '2023-06-01',
      'x-request-id': requestId,
    },
    body: JSON.stringify({
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Say hello' }],
      ...body,
    }),
  });
}

function chat(body: Record<string, unknown>, requestId = newRequestId()): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${teamKey}`,
      'x-request-id': requestId,
    },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Say hello' }], ...body }),
  });
}

interface RecordEntry {
  request_id: string;
  outcome: string;
  status: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_usd: number;
  estimated: boolean;
}

async function recordOf(id: string): Promise<RecordEntry> {
  const read = async () =>
    (await admin.ok<{ data: RecordEntry[] }>('GET', '/requests?limit=100', undefined, 200)).data;
  const found = await pollUntil(read, (data) => data.some((entry) => entry.request_id === id));
  const record = found.find((entry) => entry.request_id === id);
  expect(record, `no usage record for ${id}`).toBeDefined();
  return record as RecordEntry;
}

interface BudgetStanding {
  spent_tokens: number;
  spent_usd: number;
  reserved_tokens: number;
}

/** The team's day budget once nothing is reserved any more. */
async function settledBudget(): Promise<BudgetStanding> {
  type Team = { standing: { budgets: BudgetStanding[] } };
  const team = await pollUntil(
    () => admin.ok<Team>('GET', `/teams/${teamId}`, undefined, 200),
    (read) => read.standing.budgets[0]?.reserved_tokens === 0,
  );
  const budget = team.standing.budgets[0];
  expect(budget?.reserved_tokens).toBe(0);
  return budget as BudgetStanding;
}

/** The `data:` payloads of an Anthropic SSE text, by event name. */
function eventsOf(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)?.[1] ?? '',
      data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>,
    }));
}

const LEAKING = `bad key ${SECRET} at http://127.0.0.1:41501`;

describe('an error event on a pass-through stream', () => {
  it('reaches the client with the gateway’s key and the upstream’s address scrubbed, the rest byte for byte', async () => {
    const leaking = `bad key ${SECRET} at ${upstreamAddress}`;
    const before = MESSAGE_START + PING + BLOCK_START + delta('Hel') + delta('lo');
    claudeA.handler = streamWith(before, errorEvent('api_error', leaking));
    const response = await messages({ model: 'claude-one', stream: true });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text.startsWith(before)).toBe(true);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(new URL(upstreamAddress).host);
    const last = eventsOf(text).at(-1);
    expect(last).toMatchObject({ event: 'error', data: { type: 'error', error: { type: 'api_error' } } });
    expect((last?.data.error as { message?: string } | undefined)?.message).toBe(
      'bad key [redacted] at http://[redacted]',
    );
  });

  it('is scrubbed for the Anthropic SDK too, whatever the chunks the upstream wrote it in', async () => {
    const event = errorEvent('api_error', LEAKING);
    const cut = event.indexOf(SECRET) + 5;
    claudeA.handler = streamWith(
      MESSAGE_START + PING + BLOCK_START + delta('Hi'),
      event.slice(0, cut),
      event.slice(cut),
    );
    const error = await anthropic()
      .messages.stream({
        model: 'claude-one',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'Say hello' }],
      })
      .finalMessage()
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect(String((error as Error).message)).toContain('bad key [redacted]');
    expect(String((error as Error).message)).not.toContain(SECRET);
  });

  it('is scrubbed when the upstream ends its events with CRLF, the other events untouched', async () => {
    const crlf = (text: string) => text.replaceAll('\n', '\r\n');
    const before = crlf(MESSAGE_START + PING + BLOCK_START + delta('Hi'));
    claudeA.handler = streamWith(before, crlf(errorEvent('api_error', LEAKING)));
    const response = await messages({ model: 'claude-one', stream: true });
    const text = await response.text();
    expect(text.startsWith(before)).toBe(true);
    expect(text).not.toContain(SECRET);
    expect(text).toContain('bad key [redacted]');
  });

  it('as the first event (a 5xx before any content) leaves no secret in the JSON error either', async () => {
    claudeA.handler = streamWith(errorEvent('api_error', LEAKING));
    const response = await messages({ model: 'claude-one', stream: true });
    const text = await response.text();
    expect(response.status).toBe(502);
    expect(text).not.toContain(SECRET);
    expect(JSON.parse(text)).toMatchObject({ type: 'error', error: { type: 'api_error' } });
  });
});

describe('a /v1/messages stream that fails after its 200', () => {
  it('pass-through: recorded failed with nothing charged, and refunded', async () => {
    const spent = await settledBudget();
    claudeA.handler = streamWith(
      MESSAGE_START + PING + BLOCK_START + delta('Hello'),
      errorEvent('api_error', 'Internal server error'),
    );
    const id = newRequestId();
    const response = await messages({ model: 'claude-one', stream: true }, id);
    expect(response.status).toBe(200);
    expect(eventsOf(await response.text()).at(-1)?.event).toBe('error');
    const record = await recordOf(id);
    expect(record).toMatchObject({
      outcome: 'failed',
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
      cost_usd: 0,
    });
    const after = await settledBudget();
    expect({ tokens: after.spent_tokens, usd: after.spent_usd }).toEqual({
      tokens: spent.spent_tokens,
      usd: spent.spent_usd,
    });
  });

  it('translated from a chat stream that ends in an error: the same', async () => {
    const spent = await settledBudget();
    const [first, hello] = chatChunkFixtures('gpt-4o-mini', ['Hello'], false);
    chatServer.handler = streamWith(
      `data: ${JSON.stringify(first)}\n\ndata: ${JSON.stringify(hello)}\n\n`,
      `data: ${JSON.stringify({ error: { message: 'The server had an error', type: 'server_error' } })}\n\n`,
    );
    const id = newRequestId();
    const response = await messages({ model: 'gpt-one', stream: true }, id);
    expect(response.status).toBe(200);
    expect(eventsOf(await response.text()).at(-1)?.event).toBe('error');
    expect(await recordOf(id)).toMatchObject({ outcome: 'failed', prompt_tokens: 0, cost_usd: 0 });
    expect((await settledBudget()).spent_usd).toBe(spent.spent_usd);
  });

  it('translated from a chat stream cut short without a finish_reason: the same', async () => {
    const spent = await settledBudget();
    const [first, hello] = chatChunkFixtures('gpt-4o-mini', ['Hello'], false);
    chatServer.handler = streamWith(`data: ${JSON.stringify(first)}\n\ndata: ${JSON.stringify(hello)}\n\n`);
    const id = newRequestId();
    const response = await messages({ model: 'gpt-one', stream: true }, id);
    expect(response.status).toBe(200);
    expect(eventsOf(await response.text()).at(-1)?.event).toBe('error');
    expect(await recordOf(id)).toMatchObject({ outcome: 'failed', prompt_tokens: 0, cost_usd: 0 });
    expect((await settledBudget()).spent_usd).toBe(spent.spent_usd);
  });

  it('a whole stream is still charged what message_start and message_delta reported', async () => {
    claudeA.handler = streamWith(WHOLE);
    const id = newRequestId();
    const response = await messages({ model: 'claude-one', stream: true }, id);
    expect(await response.text()).toBe(WHOLE);
    expect(await recordOf(id)).toMatchObject({ outcome: 'served', prompt_tokens: 11, completion_tokens: 2 });
  });
});

describe('an Anthropic error event before any content, on the pass-through', () => {
  const overloadedAfterStart = streamWith(MESSAGE_START, PING, errorEvent('overloaded_error', 'Overloaded'));

  it('fails over to the next deployment (message_start and ping held back): the client gets only its stream', async () => {
    claudeA.handler = overloadedAfterStart;
    claudeB.handler = streamWith(WHOLE);
    const response = await messages({ model: 'claude-pair', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('claude-b');
    expect(await response.text()).toBe(WHOLE);
    expect(claudeB.requests.at(-1)?.headers['x-api-key']).toBe(OTHER_KEY);
  });

  it('fails over to a translated deployment as the chat surface does', async () => {
    const [first, hello, stop] = chatChunkFixtures('gpt-4o-mini', ['Hello'], false);
    const chatStream = streamWith(
      `${[first, hello, stop].map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join('')}data: [DONE]\n\n`,
    );
    claudeA.handler = overloadedAfterStart;
    chatServer.handler = chatStream;
    const response = await messages({ model: 'claude-then-oai', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('oai');
    const events = eventsOf(await response.text());
    expect(events.map((event) => event.event)).not.toContain('error');
    expect(events.at(-1)?.event).toBe('message_stop');

    // The chat surface, for comparison: the same attempts.
    const viaChat = await chat({ model: 'claude-then-oai', stream: true });
    expect(viaChat.status).toBe(200);
    expect(viaChat.headers.get('x-tollgate-attempts')).toBe('2');
    await viaChat.text();
  });

  it('with one deployment is a 529 overloaded_error the SDK sees as such, not a 200', async () => {
    claudeA.handler = overloadedAfterStart;
    const response = await messages({ model: 'claude-one', stream: true });
    expect(response.status).toBe(529);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
  });

  it('after content has started is relayed as the stream’s end, not failed over', async () => {
    const before = MESSAGE_START + PING + BLOCK_START;
    claudeA.handler = streamWith(before, errorEvent('overloaded_error', 'Overloaded'));
    claudeB.handler = streamWith(WHOLE);
    const response = await messages({ model: 'claude-pair', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-attempts')).toBe('1');
    const text = await response.text();
    expect(text.startsWith(before)).toBe(true);
    expect(eventsOf(text).at(-1)).toMatchObject({
      event: 'error',
      data: { error: { type: 'overloaded_error' } },
    });
    expect(claudeB.requests).toHaveLength(0);
  });
});

describe('an upstream 403 permission_error', () => {
  const body = `{"type":"error","error":{"type":"permission_error","message":"Your API key ${SECRET} does not have permission to use the specified resource."},"request_id":"req_403"}`;

  it('is a 403 on the pass-through, the upstream’s body scrubbed, PermissionDeniedError in the SDK', async () => {
    claudeA.handler = jsonWith(403, body);
    const response = await messages({ model: 'claude-one' });
    expect(response.status).toBe(403);
    const text = await response.text();
    expect(text).toBe(body.replace(SECRET, '[redacted]'));
    const error = await anthropic()
      .messages.create({ model: 'claude-one', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Anthropic.PermissionDeniedError);
  });

  it('is a 403 on the chat surface through the same backend, as before', async () => {
    claudeA.handler = jsonWith(403, body);
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: teamKey, maxRetries: 0 });
    const error = await client.chat.completions
      .create({ model: 'claude-one', messages: [{ role: 'user', content: 'hi' }] })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(String((error as Error).message)).not.toContain(SECRET);
  });
});

describe('a /v1/messages request without a key', () => {
  it('is told to send it as x-api-key, in Anthropic’s shape; the OpenAI surface names Bearer first', async () => {
    const response = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: 'claude-one',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    expect(response.status).toBe(401);
    const body = (await response.json()) as { type: string; error: { type: string; message: string } };
    expect(body).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(body.error.message).toMatch(/^You didn't provide an API key\. Send it as an 'x-api-key' header/);

    const viaChat = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-one', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(viaChat.status).toBe(401);
    const chatError = ((await viaChat.json()) as { error: { message: string } }).error.message;
    expect(chatError).toContain("'Authorization: Bearer <key>'");
    expect(chatError).toContain("'x-api-key'");
  });
});
