import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cacheKey } from '../src/cache/cache-key.js';
import { bodyKeepingNumbers, parseKeepingNumbers, withPlainNumbers } from '../src/json-numbers.js';
import { FakeUpstream, type RecordedRequest, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatCompletionFixture } from './support/openai-fixtures.js';

/**
 * Numbers JavaScript cannot hold (integers past 2^53, exponents past 1e308) inside a request or an
 * answer reach the other side as they were written, through every path that re-serialises JSON:
 * raw bytes in, raw bytes checked at a real upstream (an SDK cannot even write such a number).
 */

/** 24 digits: rounds to 123456789012345680000000 as a double. */
const BIG_ID = '123456789012345678901234';
/** Rounds to the same double as 18446744073709551615. */
const U64_MAX = '18446744073709551615';
const U64_MAX_MINUS_ONE = '18446744073709551614';

describe('parsing keeps what a double cannot hold', () => {
  it('keeps unsafe integers and overflowing exponents as written, and leaves the rest numbers', () => {
    const text = `{"a":{"id":${BIG_ID},"big":1e400,"neg":-${U64_MAX},"safe":9007199254740991,"pi":3.14159265358979323846,"small":1.5e-300}}`;
    const value = parseKeepingNumbers(text) as { a: Record<string, unknown> };
    expect(JSON.stringify(value)).toBe(
      `{"a":{"id":${BIG_ID},"big":1e400,"neg":-${U64_MAX},"safe":9007199254740991,"pi":3.141592653589793,"small":1.5e-300}}`,
    );
    expect(value.a.safe).toBe(9007199254740991);
    expect(value.a.pi).toBe(Math.PI);
    // Without a candidate in the text, plain numbers as JSON.parse gives them.
    expect(parseKeepingNumbers('{"n":[1,2.5,-3]}')).toEqual({ n: [1, 2.5, -3] });
  });

  it('leaves a body’s top-level fields numbers, which the gateway validates and reads', () => {
    const text = `{"seed":${U64_MAX},"max_tokens":1e400,"tools":[{"maximum":${U64_MAX}}]}`;
    const body = bodyKeepingNumbers(text, JSON.parse(text)) as Record<string, unknown>;
    expect(body.seed).toBe(Number(U64_MAX));
    expect(body.max_tokens).toBe(Number.POSITIVE_INFINITY);
    expect(JSON.stringify(body.tools)).toBe(`[{"maximum":${U64_MAX}}]`);
    // No candidate: the parsed value is handed back as it was.
    const plain = { n: 1 };
    expect(bodyKeepingNumbers('{"n":1}', plain)).toBe(plain);
  });

  it('turns kept texts back into numbers for code that reads them (an in-process model’s grammar)', () => {
    const schema = parseKeepingNumbers(
      `{"type":"object","properties":{"n":{"type":"integer","maximum":${U64_MAX},"enum":[1,${BIG_ID}]}}}`,
    );
    const plain = withPlainNumbers(schema);
    expect(plain).toEqual({
      type: 'object',
      properties: { n: { type: 'integer', maximum: Number(U64_MAX), enum: [1, Number(BIG_ID)] } },
    });
    // The kept value is left as it was for whoever writes it on.
    expect(JSON.stringify(schema)).toContain(`"maximum":${U64_MAX}`);
    const untouched = { type: 'object', properties: { n: { maximum: 5, enum: [1, 2] } } };
    expect(withPlainNumbers(untouched)).toBe(untouched);
  });

  it('gives bodies that differ only in a kept number different cache keys', () => {
    const key = (text: string) =>
      cacheKey(
        'chat.completions',
        'gpt-test',
        'gpt-test',
        bodyKeepingNumbers(text, JSON.parse(text)) as Record<string, unknown>,
      );
    const messages = '"messages":[{"role":"user","content":"hi"}]';
    const a = key(`{${messages},"tools":[{"maximum":${U64_MAX}}]}`);
    const b = key(`{${messages},"tools":[{"maximum":${U64_MAX_MINUS_ONE}}]}`);
    // An object that looks like a kept number's inside is not that number.
    const c = key(`{${messages},"tools":[{"maximum":{"rawJSON":"${U64_MAX}"}}]}`);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(key(`{${messages}, "tools":[{"maximum":${U64_MAX}}]}`)).toBe(a);
  });
});

describe('through the gateway, to real upstreams and back', () => {
  const openai = new FakeUpstream();
  const anthropic = new FakeUpstream();
  /** What the fake Anthropic answers with, as bytes. */
  let anthropicAnswer = '';
  let gw: TestGateway;

  beforeAll(async () => {
    openai.on('POST', '/v1/chat/completions', (_request, res) =>
      sendJson(res, 200, chatCompletionFixture('upstream-gpt', 'ok')),
    );
    anthropic.on('POST', '/v1/messages', (_request, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(anthropicAnswer);
    });
    const [openaiUrl, anthropicUrl] = await Promise.all([openai.start(), anthropic.start()]);
    gw = await startGateway({
      backends: {
        upstream: { type: 'openai', baseUrl: `${openaiUrl}/v1`, apiKey: 'sk-upstream-secret-123' },
        claude: { type: 'anthropic', baseUrl: anthropicUrl, apiKey: 'sk-ant-upstream-secret' },
      },
      models: {
        'gpt-test': { backend: 'upstream', model: 'upstream-gpt' },
        'claude-test': { backend: 'claude', model: 'claude-sonnet-4-5' },
      },
    });
  });

  beforeEach(() => {
    openai.requests.length = 0;
    anthropic.requests.length = 0;
    anthropicAnswer = JSON.stringify({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [{ type: 'text', text: 'ok' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 3, output_tokens: 1 },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([openai.stop(), anthropic.stop()]);
  });

  const post = (path: string, body: string) =>
    fetch(`${gw.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        // Anthropic's header makes the gateway answer errors in Anthropic's shape: only on its API.
        ...(path.startsWith('/v1/messages') ? { 'anthropic-version': '2023-06-01' } : {}),
      },
      body,
    });

  const only = (upstream: FakeUpstream): RecordedRequest => {
    expect(upstream.requests).toHaveLength(1);
    return upstream.requests[0] as RecordedRequest;
  };

  /** A Messages conversation whose history holds a tool call with a 24-digit id. */
  const messagesBody = (model: string) =>
    `{"model":"${model}","max_tokens":50,"messages":[{"role":"user","content":"order?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"order_id":${BIG_ID},"limit":1e400}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"shipped"}]}],"tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"order_id":{"type":"integer","maximum":${U64_MAX}}}}}]}`;

  it('chat completions: a tool schema’s bound reaches an OpenAI-compatible upstream as written', async () => {
    const body = `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"n":{"type":"integer","maximum":${U64_MAX},"default":1e400}}}}}]}`;
    const response = await post('/v1/chat/completions', body);
    expect(response.status).toBe(200);
    const sent = only(openai).body.toString('utf8');
    expect(sent).toContain(`"maximum":${U64_MAX}`);
    expect(sent).toContain('"default":1e400');
  });

  it('Messages to an Anthropic upstream: the tool call in the history keeps its digits', async () => {
    const response = await post('/v1/messages', messagesBody('claude-test'));
    expect(response.status).toBe(200);
    const sent = only(anthropic).body.toString('utf8');
    expect(sent).toContain(`"input":{"order_id":${BIG_ID},"limit":1e400}`);
    expect(sent).toContain(`"maximum":${U64_MAX}`);
  });

  it('Messages translated to chat: the tool call’s arguments hold the client’s digits', async () => {
    const response = await post('/v1/messages', messagesBody('gpt-test'));
    expect(response.status).toBe(200);
    const sent = only(openai).json as {
      messages: Array<{ tool_calls?: Array<{ function: { arguments: string } }> }>;
    };
    const call = sent.messages.find((message) => message.tool_calls)?.tool_calls?.[0];
    expect(call?.function.arguments).toBe(`{"order_id":${BIG_ID},"limit":1e400}`);
  });

  it('chat to an Anthropic upstream: tool call arguments become an input with the same digits', async () => {
    const body = `{"model":"claude-test","messages":[{"role":"user","content":"order?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\\"order_id\\":${BIG_ID}}"}}]},{"role":"tool","tool_call_id":"call_1","content":"shipped"}]}`;
    const response = await post('/v1/chat/completions', body);
    expect(response.status).toBe(200);
    expect(only(anthropic).body.toString('utf8')).toContain(`"input":{"order_id":${BIG_ID}}`);
  });

  it('an Anthropic answer’s tool input comes back to a chat client with its digits', async () => {
    anthropicAnswer = `{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"toolu_9","name":"lookup","input":{"order_id":${BIG_ID}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":9}}`;
    const response = await post(
      '/v1/chat/completions',
      '{"model":"claude-test","messages":[{"role":"user","content":"order?"}]}',
    );
    expect(response.status).toBe(200);
    const text = await response.text();
    const answer = JSON.parse(text) as {
      choices: Array<{ message: { tool_calls: Array<{ function: { arguments: string } }> } }>;
    };
    expect(answer.choices[0]?.message.tool_calls[0]?.function.arguments).toBe(`{"order_id":${BIG_ID}}`);
  });

  it('refuses such a number where the gateway reads one (a token id) in OpenAI’s shape', async () => {
    const response = await post('/v1/embeddings', `{"model":"gpt-test","input":[[1,${BIG_ID}]]}`);
    expect(response.status).toBe(400);
    const answer = (await response.json()) as { error: { type: string; message: string; param: string } };
    expect(answer.error.type).toBe('invalid_request_error');
    expect(answer.error.param).toBe('input');
    expect(answer.error.message).toContain('token arrays');
    expect(openai.requests).toHaveLength(0);
  });

  it('still refuses a body with __proto__ or broken JSON in OpenAI’s shape, numbers or not', async () => {
    for (const body of [
      `{"model":"gpt-test","messages":[],"x":{"__proto__":{"n":${BIG_ID}}}}`,
      `{"model":"gpt-test","messages":[],"n":${BIG_ID}`,
    ]) {
      const response = await post('/v1/chat/completions', body);
      expect(response.status).toBe(400);
      const answer = (await response.json()) as { error: { type: string; message: string } };
      expect(answer.error.type).toBe('invalid_request_error');
    }
    expect(openai.requests).toHaveLength(0);
  });
});
