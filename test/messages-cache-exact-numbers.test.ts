import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * ③ the response cache on /v1/messages keeps a tool input's numbers as the model wrote them, in
 * whichever form the answer was stored (a stream assembled, or JSON) and replayed (JSON, or a
 * stream rebuilt from it). An id past 2^53 read through JSON.parse comes out as other digits.
 * Raw bytes are read here: an SDK would round the number itself.
 */

/** 20 digits: 12345678901234567000 as a double. */
const BIG = '12345678901234567890';
const ARGS = `{"city":"Paris","id":${BIG}}`;

const upstream = new FakeUpstream();
let gw: TestGateway;

beforeAll(async () => {
  upstream.on('POST', '/v1/chat/completions', (request, res) => {
    const body = request.json as { stream?: boolean; model: string };
    const call = { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: ARGS } };
    if (!body.stream) {
      sendJson(res, 200, {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        created: 1_700_000_000,
        model: body.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: null, tool_calls: [call] },
            finish_reason: 'tool_calls',
          },
        ],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      });
      return;
    }
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    void sendSse(res, [
      chunk({
        role: 'assistant',
        tool_calls: [{ index: 0, ...call, function: { name: 'lookup', arguments: '' } }],
      }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: ARGS.slice(0, 20) } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: ARGS.slice(20) } }] }),
      chunk({}, 'tool_calls'),
      {
        ...chunk({}),
        choices: [],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      },
    ]);
  });
  const url = await upstream.start();
  gw = await startGateway({
    cache: { enabled: true, scope: 'global' },
    backends: { up: { type: 'openai', baseUrl: `${url}/v1`, apiKey: 'sk-upstream-123456' } },
    models: { gpt: { backend: 'up', model: 'upstream-gpt' } },
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream.stop();
});

/** One /v1/messages request's cache header and raw body. */
async function ask(question: string, stream: boolean): Promise<{ cache: string | null; text: string }> {
  const res = await fetch(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({
      model: 'gpt',
      max_tokens: 50,
      temperature: 0,
      stream,
      messages: [{ role: 'user', content: question }],
      tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
    }),
  });
  expect(res.status).toBe(200);
  return { cache: res.headers.get('x-tollgate-cache'), text: await res.text() };
}

/** The tool input a streamed answer's input_json_delta pieces make. */
function streamedInput(text: string): string {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as { delta?: { type?: string; partial_json?: string } })
    .filter((event) => event.delta?.type === 'input_json_delta')
    .map((event) => event.delta?.partial_json ?? '')
    .join('');
}

describe('③ a tool input’s big numbers through the Messages cache', () => {
  it('a stream stored, then replayed as JSON and as a stream, keeps the digits', async () => {
    const miss = await ask('stream first', true);
    expect(miss.cache).toBe('MISS');
    expect(streamedInput(miss.text)).toContain(BIG);

    const json = await ask('stream first', false);
    expect(json.cache).toBe('HIT');
    expect(json.text).toContain(`"id":${BIG}`);

    const replay = await ask('stream first', true);
    expect(replay.cache).toBe('HIT');
    expect(streamedInput(replay.text)).toContain(`"id":${BIG}`);
  });

  it('JSON stored, then replayed as a stream, keeps the digits', async () => {
    const miss = await ask('json first', false);
    expect(miss.cache).toBe('MISS');
    expect(miss.text).toContain(`"id":${BIG}`);

    const replay = await ask('json first', true);
    expect(replay.cache).toBe('HIT');
    expect(streamedInput(replay.text)).toContain(`"id":${BIG}`);
  });
});
