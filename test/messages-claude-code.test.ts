import { readFileSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeAnthropic } from './support/fake-anthropic.js';
import { FakeUpstream, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * What Claude Code sends, replayed: test/fixtures/claude-code-request.json is a request the real
 * CLI (2.1.332) made through Tollgate (texts replaced, structure as sent: `system` blocks with
 * cache_control, 12 tools, thinking, context_management, output_config, metadata, max_tokens
 * 32000, always streamed, a long anthropic-beta list). Through an Anthropic backend it must arrive
 * as sent; through a chat backend it must be translated and answered in events the SDK (and so
 * the CLI) reads.
 */

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/claude-code-request.json', import.meta.url), 'utf8'),
) as { headers: Record<string, string>; body: Record<string, unknown> };
const MODEL = String(fixture.body.model);
const ANSWER = 'Hello from a chat model.';

let anthropic: FakeAnthropic;
let chat: FakeUpstream;
let gw: TestGateway;

beforeAll(async () => {
  anthropic = new FakeAnthropic();
  chat = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) => {
    const base = { id: 'chatcmpl-cc', object: 'chat.completion.chunk', created: 1, model: 'm' };
    return sendSse(res, [
      {
        ...base,
        choices: [{ index: 0, delta: { role: 'assistant', content: ANSWER }, finish_reason: null }],
      },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
      { ...base, choices: [], usage: { prompt_tokens: 900, completion_tokens: 6, total_tokens: 906 } },
    ]);
  });
  const [anthropicUrl, chatUrl] = await Promise.all([anthropic.start(), chat.start()]);
  gw = await startGateway({
    backends: {
      claude: { type: 'anthropic', baseUrl: anthropicUrl, apiKey: 'sk-ant-gateway-000000' },
      chat: { type: 'openai', baseUrl: `${chatUrl}/v1`, apiKey: 'sk-chat-000000' },
    },
    models: {
      [MODEL]: { backend: 'claude' },
      'local-coder': { backend: 'chat', model: 'qwen-coder' },
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await anthropic?.stop();
  await chat?.stop();
});

/** Posts the fixture as Claude Code does: Bearer token, ?beta=true, its version and betas. */
function send(model: string) {
  return fetch(`${gw.url}/v1/messages?beta=true`, {
    method: 'POST',
    headers: { ...fixture.headers, authorization: 'Bearer tg-team-key', 'content-type': 'application/json' },
    body: JSON.stringify({ ...fixture.body, model }),
  });
}

describe("Claude Code's request", () => {
  it('reaches an Anthropic backend as sent, betas and all, and streams back', async () => {
    const response = await send(MODEL);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await response.text();
    expect(text).toContain('event: message_stop');
    const received = anthropic.requests.at(-1);
    expect(received?.json).toEqual(fixture.body);
    expect(received?.headers['anthropic-beta']).toBe(fixture.headers['anthropic-beta']);
    expect(received?.headers['anthropic-version']).toBe(fixture.headers['anthropic-version']);
    expect(received?.headers['x-api-key']).toBe('sk-ant-gateway-000000');
    expect(received?.headers.authorization).toBeUndefined();
  });

  it('is translated for a chat model: tools as functions, Anthropic-only fields dropped, an answer the SDK reads', async () => {
    const client = new Anthropic({ baseURL: gw.url, authToken: 'tg-team-key', apiKey: null, maxRetries: 0 });
    const stream = client.messages.stream({ ...fixture.body, model: 'local-coder' } as never, {
      headers: fixture.headers,
      query: { beta: 'true' },
    });
    const message = await stream.finalMessage();
    expect(message.content).toEqual([expect.objectContaining({ type: 'text', text: ANSWER })]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage).toMatchObject({ input_tokens: 900, output_tokens: 6 });
    const sent = chat.requests.at(-1)?.json as Record<string, unknown>;
    expect(sent.model).toBe('qwen-coder');
    expect(sent.stream).toBe(true);
    const tools = sent.tools as Array<{ type: string; function: { name: string } }>;
    expect(tools.map((tool) => tool.function.name)).toEqual(
      (fixture.body.tools as Array<{ name: string }>).map((tool) => tool.name),
    );
    expect((sent.messages as Array<{ role: string }>)[0]?.role).toBe('system');
    for (const dropped of ['thinking', 'context_management', 'output_config', 'metadata', 'system'])
      expect(sent).not.toHaveProperty(dropped);
    expect(sent.max_tokens).toBe(fixture.body.max_tokens);
  });
});
