import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';

/**
 * Upstream answers that are a 200 but no whole answer: a stream that says part way, in an event,
 * that it failed (instead of breaking off), and a JSON endpoint answered with something else
 * than JSON. Both must be accounted for as what they are.
 */
const ADMIN = 'test-admin-key-0123456789';
let upstream: FakeUpstream;
let gw: TestGateway;
let key: string;

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
    },
  });
  const team = (await admin('POST', '/teams', { name: 'errors' })) as { id: string };
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
async function recorded(requestId: string): Promise<RecordedRequest> {
  for (;;) {
    const page = (await admin('GET', '/requests?limit=50')) as { data: RecordedRequest[] };
    const found = page.data.find((item) => item.request_id === requestId);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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
