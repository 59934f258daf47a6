import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCredibleUsage } from '../src/backends/credible-usage.js';
import { StreamUsage, usageOfAnswer } from '../src/pipeline/usage.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * Usage that is not made of counts (negative, text, past any real request) is not charged as
 * given: the answer is counted by the gateway and recorded as estimated, as one without usage is.
 */

const GARBAGE: Record<string, Record<string, unknown>> = {
  negative: { prompt_tokens: -50, completion_tokens: -10, total_tokens: -60 },
  text: { prompt_tokens: '5', completion_tokens: 'lots', total_tokens: null },
  huge: { prompt_tokens: 1e15, completion_tokens: 1e300, total_tokens: 1e300 },
  fraction: { prompt_tokens: 2.5, completion_tokens: 1, total_tokens: 3.5 },
  overcached: {
    prompt_tokens: 100,
    completion_tokens: 1,
    total_tokens: 101,
    prompt_tokens_details: { cached_tokens: 500 },
  },
  detail: {
    prompt_tokens: 5,
    completion_tokens: 1,
    total_tokens: 6,
    prompt_tokens_details: { cached_tokens: -5 },
  },
};

describe('credible usage', () => {
  it('whole counts (details too) are credible; anything else is not', () => {
    expect(
      isCredibleUsage({
        prompt_tokens: 11,
        completion_tokens: 7,
        total_tokens: 18,
        prompt_tokens_details: { cached_tokens: 3 },
        completion_tokens_details: null,
      }),
    ).toBe(true);
    expect(
      isCredibleUsage({
        input_tokens: 3,
        output_tokens: 1,
        cache_creation: { ephemeral_5m_input_tokens: 2 },
      }),
    ).toBe(true);
    for (const usage of Object.values(GARBAGE)) expect(isCredibleUsage(usage)).toBe(false);
    // Providers' own fields beside the counts are theirs: Groq's times, OpenRouter's cost.
    expect(
      isCredibleUsage({
        prompt_tokens: 12,
        completion_tokens: 3,
        total_tokens: 15,
        queue_time: 0.0213,
        prompt_time: 0.0021,
        completion_time: 0.011,
        total_time: 0.0131,
      }),
    ).toBe(true);
    expect(
      isCredibleUsage({
        prompt_tokens: 12,
        completion_tokens: 3,
        total_tokens: 15,
        cost: 0.00014,
        cost_details: { upstream_inference_cost: 0.0001 },
      }),
    ).toBe(true);
  });

  it('reads as no usage in a JSON answer and a stream, on every surface', () => {
    for (const usage of Object.values(GARBAGE)) {
      expect(
        usageOfAnswer('chat.completions', Buffer.from(JSON.stringify({ choices: [], usage }))),
      ).toBeUndefined();
      expect(new StreamUsage('chat.completions').read({ choices: [], usage })).toBeUndefined();
      expect(
        new StreamUsage('responses').read({ type: 'response.completed', response: { usage } }),
      ).toBeUndefined();
    }
    const messages = new StreamUsage('messages');
    expect(
      messages.read({ type: 'message_start', message: { usage: { input_tokens: -4, output_tokens: 1 } } }),
    ).toBe(undefined);
    expect(
      usageOfAnswer(
        'messages',
        Buffer.from(JSON.stringify({ usage: { input_tokens: 'x', output_tokens: 1 } })),
      ),
    ).toBe(undefined);
  });
});

describe('through the gateway', () => {
  const upstream = new FakeUpstream();
  const anthropic = new FakeUpstream();
  let gw: TestGateway;
  let key: string;

  beforeAll(async () => {
    upstream.on('POST', '/v1/chat/completions', (request, res) => {
      const body = request.json as { stream?: boolean; model: string; messages: Array<{ content: string }> };
      const usage = GARBAGE[body.messages[0]?.content ?? ''];
      const base = { id: 'chatcmpl-1', created: 1_700_000_000, model: body.model };
      if (body.stream) {
        void sendSse(res, [
          {
            ...base,
            object: 'chat.completion.chunk',
            choices: [{ index: 0, delta: { content: 'four words of answer' } }],
          },
          {
            ...base,
            object: 'chat.completion.chunk',
            choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
          },
          { ...base, object: 'chat.completion.chunk', choices: [], usage },
        ]);
        return;
      }
      sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'four words of answer' },
            finish_reason: 'stop',
          },
        ],
        usage,
      });
    });
    // An Anthropic upstream whose message_start says the prompt had a count that is none.
    anthropic.on('POST', '/v1/messages', (_request, res) => {
      const events = [
        [
          'message_start',
          {
            type: 'message_start',
            message: {
              id: 'msg_1',
              type: 'message',
              role: 'assistant',
              model: 'claude-x',
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: -5, output_tokens: 1 },
            },
          },
        ],
        [
          'content_block_start',
          { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        ],
        [
          'content_block_delta',
          {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'text_delta', text: 'four words of answer' },
          },
        ],
        ['content_block_stop', { type: 'content_block_stop', index: 0 }],
        [
          'message_delta',
          {
            type: 'message_delta',
            delta: { stop_reason: 'end_turn', stop_sequence: null },
            usage: { output_tokens: 4 },
          },
        ],
        ['message_stop', { type: 'message_stop' }],
      ] as const;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join(''));
    });
    const url = await upstream.start();
    const anthropicUrl = await anthropic.start();
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: {
        up: { type: 'openai', baseUrl: `${url}/v1`, apiKey: 'sk-upstream-123456' },
        claude: { type: 'anthropic', baseUrl: anthropicUrl, apiKey: 'sk-ant-upstream-123456' },
      },
      models: { gpt: { backend: 'up' }, claude: { backend: 'claude', model: 'claude-x' } },
    });
    const admin = new AdminHttp(gw.url);
    const team = await admin.call<{ id: string }>('POST', '/teams', { name: 'credible' });
    const issued = await admin.call<{ key: string }>('POST', '/keys', { team_id: team.body.id });
    key = issued.body.key;
  });

  afterAll(async () => {
    await gw?.close();
    await upstream.stop();
    await anthropic.stop();
  });

  it('garbage usage is counted by the gateway and recorded as estimated, JSON and streamed', async () => {
    const names = Object.keys(GARBAGE);
    for (const stream of [false, true]) {
      for (const name of names) {
        const response = await fetch(`${gw.baseURL}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: 'gpt', stream, messages: [{ role: 'user', content: name }] }),
        });
        expect(response.status).toBe(200);
        await response.text();
      }
    }
    const admin = new AdminHttp(gw.url);
    type Logged = {
      estimated: boolean;
      prompt_tokens: number;
      completion_tokens: number;
      total_tokens: number;
    };
    const log = await pollUntil(
      async () => (await admin.call<{ data: Logged[] }>('GET', '/requests?limit=100')).body.data,
      (data) => data.length >= names.length * 2,
    );
    expect(log).toHaveLength(names.length * 2);
    for (const entry of log) {
      expect(entry.estimated).toBe(true);
      expect(entry.prompt_tokens).toBeGreaterThan(0);
      expect(entry.completion_tokens).toBeGreaterThan(0);
      expect(entry.total_tokens).toBe(entry.prompt_tokens + entry.completion_tokens);
    }
  });

  /** The usage objects a streamed chat completion (usage chunk asked for) gave its client. */
  async function streamedUsages(model: string, content: string): Promise<Array<{ prompt_tokens: number }>> {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        model,
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content }],
      }),
    });
    return (await response.text())
      .split('\n\n')
      .filter((event) => event.startsWith('data: {'))
      .flatMap((event) => {
        const usage = (JSON.parse(event.slice(6)) as { usage?: { prompt_tokens: number } | null }).usage;
        return usage ? [usage] : [];
      });
  }

  it('a streamed usage chunk that is not counts never reaches the client: the gateway’s own count does, once', async () => {
    const usages = await streamedUsages('gpt', 'huge');
    expect(usages).toHaveLength(1);
    expect(usages[0]?.prompt_tokens).toBeGreaterThan(0);
    expect(usages[0]?.prompt_tokens).toBeLessThan(1_000);
  });

  it('an Anthropic stream whose prompt count is none is counted by the gateway, passed through or translated', async () => {
    const admin = new AdminHttp(gw.url);
    type Logged = { model: string; estimated: boolean; prompt_tokens: number };
    const passThrough = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: 'claude',
        max_tokens: 20,
        stream: true,
        messages: [{ role: 'user', content: 'hi there' }],
      }),
    });
    expect(passThrough.status).toBe(200);
    await passThrough.text();
    const usages = await streamedUsages('claude', 'hi there');
    expect(usages).toHaveLength(1);
    expect(usages[0]?.prompt_tokens).toBeGreaterThan(0);
    // By model, not by how many records came after a count taken first: the earlier tests'
    // records are written in batches after their answers, and one may land after that count.
    const claude = (data: Logged[]) => data.filter((entry) => entry.model === 'claude');
    const log = await pollUntil(
      async () => (await admin.call<{ data: Logged[] }>('GET', '/requests?limit=100')).body.data,
      (data) => claude(data).length >= 2,
    );
    expect(claude(log)).toHaveLength(2);
    for (const entry of claude(log)) {
      expect(entry.estimated).toBe(true);
      expect(entry.prompt_tokens).toBeGreaterThan(0);
    }
  });
});
