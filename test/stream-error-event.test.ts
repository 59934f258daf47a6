import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendCall, BackendResponse, Endpoint } from '../src/backends/backend.js';
import { BackendRegistry } from '../src/backends/registry.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures, chatCompletionFixture } from './support/openai-fixtures.js';
import { pollUntil } from './support/poll.js';

/**
 * Upstream answers that are a 200 but no whole answer: a stream that says part way, in an event,
 * that it failed (instead of breaking off), and a JSON endpoint answered with something else
 * than JSON. Both must be accounted for as what they are.
 */
const ADMIN = 'test-admin-key-0123456789';
let upstream: FakeUpstream;
let gw: TestGateway;
let key: string;
let teamId: string;

interface RecordedRequest {
  request_id: string;
  outcome: string;
  status: number;
  prompt_tokens: number;
  estimated: boolean;
}

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) => {
    const model = String(request.json?.model);
    if (model === 'plain-text') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello');
      return;
    }
    // Errors answered with a 200, whole (some upstreams and proxies do that).
    if (model === 'json-server-error') return sendJson(res, 200, openaiError('overloaded', 'server_error'));
    if (model === 'json-rate-limited')
      return sendJson(res, 200, openaiError('slow down', 'requests', 'rate_limit_exceeded'));
    if (model === 'says-error') {
      // Answers that speak of errors without being one: the text, and a field set to null.
      if (!request.json?.stream)
        return sendJson(res, 200, { ...chatCompletionFixture(model, 'error'), error: null });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const chunk of chatChunkFixtures(model, ['error', ' "error"'], true))
        res.write(`data: ${JSON.stringify({ ...chunk, error: null })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    if (!request.json?.stream) return sendJson(res, 500, openaiError('streams only', 'server_error'));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const [first] = chatChunkFixtures(model, ['Hel'], false);
    res.write(`data: ${JSON.stringify(first)}\n\n`);
    const failure =
      model === 'anthropic-style'
        ? { type: 'error', error: { type: 'overloaded_error', message: 'overloaded part way' } }
        : openaiError('overloaded part way', 'server_error');
    // No [DONE]: the upstream ends the stream after its error event, as OpenAI's does.
    res.end(`data: ${JSON.stringify(failure)}\n\n`);
  });
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    models: {
      'openai-style': { backend: 'up' },
      'anthropic-style': { backend: 'up' },
      'plain-text': { backend: 'up' },
      'json-server-error': { backend: 'up' },
      'json-rate-limited': { backend: 'up' },
      'says-error': { backend: 'up' },
    },
  });
  // A budget, so that what is charged and refunded shows in the team's standing.
  const team = (await admin('POST', '/teams', {
    name: 'errors',
    budgets: [{ period: 'day', max_tokens: 1_000_000 }],
  })) as { id: string };
  teamId = team.id;
  key = ((await admin('POST', '/keys', { team_id: team.id })) as { key: string }).key;
});
afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return response.json();
}

function chat(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'say something long' }], ...body }),
  });
}

/** The request's usage record, once written (records are written after the answer). */
async function recorded(
  requestId: string,
  read = (path: string) => admin('GET', path),
): Promise<RecordedRequest> {
  const page = await pollUntil(
    async () => (await read('/requests?limit=50')) as { data: RecordedRequest[] },
    (found) => found.data.some((item) => item.request_id === requestId),
  );
  const found = page.data.find((item) => item.request_id === requestId);
  expect(found, `no record of ${requestId}`).toBeDefined();
  return found as RecordedRequest;
}

describe('a stream that reports an error part way', () => {
  for (const model of ['openai-style', 'anthropic-style']) {
    it(`is relayed up to its error event, with no usage event after it, and recorded as failed (${model})`, async () => {
      const response = await chat({ model, stream: true, stream_options: { include_usage: true } });
      expect(response.status).toBe(200);
      const text = await response.text();
      const events = text
        .split('\n\n')
        .filter((event) => event.startsWith('data: '))
        .map((event) => JSON.parse(event.slice(6)) as Record<string, unknown>);
      expect(events[0]?.object).toBe('chat.completion.chunk');
      // The error event is the last thing the client reads: no usage chunk of the gateway's after it.
      expect(JSON.stringify(events.at(-1))).toContain('overloaded part way');
      expect(events.filter((event) => event.usage)).toEqual([]);
      const record = await recorded(String(response.headers.get('x-request-id')));
      expect(record).toMatchObject({ outcome: 'failed', status: 200 });
    });
  }

  it('is refunded: the team spent nothing on it', async () => {
    const before = (await settledBudget()).spent_tokens;
    const response = await chat({ model: 'openai-style', stream: true });
    await response.text();
    await recorded(String(response.headers.get('x-request-id')));
    expect((await settledBudget()).spent_tokens).toBe(before);
  });
});

/** The team's day budget once nothing is reserved any more (answers settle after they are sent). */
async function settledBudget(): Promise<{ spent_tokens: number; reserved_tokens: number }> {
  type Standing = { standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } };
  const team = await pollUntil(
    async () => (await admin('GET', `/teams/${teamId}`)) as Standing,
    (read) => read.standing.budgets[0]?.reserved_tokens === 0,
  );
  const budget = team.standing.budgets[0];
  expect(budget?.reserved_tokens).toBe(0);
  return budget as { spent_tokens: number; reserved_tokens: number };
}

describe('a whole JSON answer that is an error, with a 200', () => {
  it('is the failure it says (5xx: 502; a rate limit: relayed 429), refunded and recorded failed', async () => {
    const before = (await settledBudget()).spent_tokens;
    const overloaded = await chat({ model: 'json-server-error' });
    expect(overloaded.status).toBe(502);
    expect(((await overloaded.json()) as { error: { code: string } }).error.code).toBe('upstream_error');
    const limited = await chat({ model: 'json-rate-limited' });
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { error: { message: string } }).error.message).toBe('slow down');
    for (const response of [overloaded, limited]) {
      const record = await recorded(String(response.headers.get('x-request-id')));
      expect(record.outcome).toBe('failed');
    }
    expect((await settledBudget()).spent_tokens).toBe(before);
  });

  it('a streaming client gets the failure too, not an empty 200 stream', async () => {
    const response = await chat({ model: 'json-server-error', stream: true });
    expect(response.status).toBe(502);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe('answers that speak of errors without being one', () => {
  it('are served and charged, JSON and streamed', async () => {
    const before = (await settledBudget()).spent_tokens;
    const json = await chat({ model: 'says-error' });
    expect(json.status).toBe(200);
    const streamed = await chat({
      model: 'says-error',
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = await streamed.text();
    expect(text).toContain('[DONE]');
    for (const response of [json, streamed]) {
      const record = await recorded(String(response.headers.get('x-request-id')));
      expect(record).toMatchObject({ outcome: 'served', status: 200 });
    }
    expect((await settledBudget()).spent_tokens).toBeGreaterThan(before);
  });
});

describe('a JSON endpoint answered 200 with something else', () => {
  it('is relayed as it came and charged the prompt, as an estimate', async () => {
    const response = await chat({ model: 'plain-text' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('hello');
    const record = await recorded(String(response.headers.get('x-request-id')));
    expect(record).toMatchObject({ outcome: 'served', estimated: true });
    expect(record.prompt_tokens).toBeGreaterThan(0);
  });
});

/**
 * A chat-only backend whose stream sends one chunk, then nothing until the gateway lets go of it
 * (the client left): the translated Responses stream ends with `response.failed` for a client
 * that is gone, which is that client leaving, not the upstream failing.
 */
class OneChunkThenWait implements Backend {
  readonly name = 'waiting';
  readonly type = 'test';
  supports(endpoint: Endpoint): boolean {
    return endpoint === 'chat.completions';
  }
  async send(call: BackendCall): Promise<BackendResponse> {
    // The role chunk and the first text, not the finish chunk.
    const [role, text] = chatChunkFixtures(call.model, ['Hello there, this is the first part'], false);
    async function* body(): AsyncGenerator<Buffer> {
      yield Buffer.from(`data: ${JSON.stringify(role)}\n\ndata: ${JSON.stringify(text)}\n\n`);
      await new Promise((_resolve, reject) => {
        if (call.signal.aborted) reject(call.signal.reason);
        call.signal.addEventListener('abort', () => reject(call.signal.reason), { once: true });
      });
    }
    return { status: 200, contentType: 'text/event-stream', headers: {}, body: body() };
  }
  async listModels(): Promise<string[]> {
    return [];
  }
  async checkHealth(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('a translated Responses stream its client leaves', () => {
  it('is charged as one the client left (served, its prompt and what it was sent), not refunded as failed', async () => {
    const translated = await startGateway(
      {
        auth: {},
        admin: { key: ADMIN },
        backends: { waiting: { type: 'mock' } },
        models: { waiting: { backend: 'waiting' } },
      },
      {},
      { registry: new BackendRegistry([new OneChunkThenWait()]) },
    );
    try {
      const adminCall = (path: string, body?: unknown) =>
        fetch(`${translated.url}/admin${path}`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }).then((response) => response.json() as Promise<Record<string, unknown>>);
      const team = await adminCall('/teams', { name: 'leaves' });
      const { key: teamKey } = (await adminCall('/keys', { team_id: team.id })) as { key: string };
      const leave = new AbortController();
      const response = await fetch(`${translated.baseURL}/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${teamKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'waiting', stream: true, input: 'tell me a long story' }),
        signal: leave.signal,
      });
      const requestId = String(response.headers.get('x-request-id'));
      // Read until the first text arrives, then leave.
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      let seen = '';
      while (!seen.includes('response.output_text.delta')) {
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended before its first text');
        seen += Buffer.from(value).toString('utf8');
      }
      leave.abort();
      await reader.cancel().catch(() => {});
      const record = await recorded(requestId, (path) => adminCall(path));
      expect(record).toMatchObject({ outcome: 'served', estimated: true });
      expect(record.prompt_tokens).toBeGreaterThan(0);
    } finally {
      await translated.close();
    }
  });
});
