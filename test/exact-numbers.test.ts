import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cacheKey } from '../src/cache/cache-key.js';
import { isInexactNumber } from '../src/json-number-scan.js';
import {
  bodyKeepingNumbers,
  MOST_KEPT_NUMBERS,
  parseKeepingNumbers,
  withPlainNumbers,
} from '../src/json-numbers.js';
import { sourceJson } from '../src/json-source.js';
import { TEST_ADMIN_KEY } from './support/admin-http.js';
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

describe('finding the numbers a double cannot hold', () => {
  it('keeps each, whatever the spacing, escapes and strings around it', () => {
    const text = `{ "a" :\n\t${BIG_ID},"s":"x\\"y: ${BIG_ID}\\\\","k\\"ey\\u0041\\\\":[1, [], {}, -${U64_MAX}],
      "e":[1.5e400, -2E+309, 1.5e-300, 3.14159265358979323846, 9007199254740991, 9007199254740993], "t":true}`;
    expect(JSON.stringify(parseKeepingNumbers(text))).toBe(
      `{"a":${BIG_ID},"s":"x\\"y: ${BIG_ID}\\\\","k\\"eyA\\\\":[1,[],{},-${U64_MAX}],"e":[1.5e400,-2E+309,1.5e-300,3.141592653589793,9007199254740991,9007199254740993],"t":true}`,
    );
  });

  it('writes every number back as JSON.parse holds it, or as written where a double cannot hold it, on generated JSON', () => {
    /** [text as a client writes it, what JSON.stringify must write of what we make of it] */
    type Written = [string, string];
    const number = fc
      .oneof(
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
        fc.integer({ min: 300, max: 999 }).map((exponent) => `-1.5E+${exponent}`),
        fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
      )
      .map((text): Written => [text, isInexactNumber(text) ? text : JSON.stringify(Number(text))]);
    const space = fc.constantFrom('', ' ', '\n', '\t ', '\r\n');
    const json: fc.Arbitrary<Written> = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        number,
        fc.string().map((text): Written => [JSON.stringify(text), JSON.stringify(text)]),
        fc.constantFrom<Written>(['true', 'true'], ['null', 'null']),
        fc
          .array(fc.tuple(space, tie('value') as fc.Arbitrary<Written>), { maxLength: 4 })
          .map(
            (items): Written => [
              `[${items.map(([before, [text]]) => before + text).join(',')}]`,
              `[${items.map(([, [, written]]) => written).join(',')}]`,
            ],
          ),
        fc
          // Keys unique here (a key given twice has its own test), and none that JavaScript
          // orders first as an array index.
          .uniqueArray(
            fc.tuple(
              fc.string().filter((key) => !/^(0|[1-9]\d*)$/.test(key)),
              space,
              tie('value') as fc.Arbitrary<Written>,
            ),
            {
              maxLength: 4,
              selector: ([key]) => key,
            },
          )
          .map(
            (entries): Written => [
              `{${entries.map(([key, before, [text]]) => `${JSON.stringify(key)}${before}:${before}${text}`).join(',')}}`,
              `{${entries.map(([key, , [, written]]) => `${JSON.stringify(key)}:${written}`).join(',')}}`,
            ],
          ),
      ),
    })).value;
    fc.assert(
      // In an array: a bare number at the top has no place to be kept in.
      fc.property(json, ([text, written]) => {
        expect(JSON.stringify(parseKeepingNumbers(`[${text}]`))).toBe(`[${written}]`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('keeping them where the gateway only writes them on', () => {
  it('keeps them in schemas and tool call inputs, and leaves every other value a number', () => {
    const text = `{"seed":${U64_MAX},"max_tokens":1e400,"metadata":{"n":${BIG_ID}},"tools":[{"type":"function","function":{"name":"f","parameters":{"maximum":${U64_MAX}}}},{"name":"g","input_schema":{"maximum":1e400}}],"response_format":{"type":"json_schema","json_schema":{"schema":{"enum":[${BIG_ID}]}}},"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"id":${BIG_ID}}},{"type":"text","text":"x","input":{"id":${BIG_ID}}}]}]}`;
    const body = bodyKeepingNumbers(text, JSON.parse(text)) as Record<string, unknown>;
    expect(body.seed).toBe(Number(U64_MAX));
    expect(body.max_tokens).toBe(Number.POSITIVE_INFINITY);
    expect(body.metadata).toEqual({ n: Number(BIG_ID) });
    const written = JSON.stringify(body);
    expect(written).toContain(`"parameters":{"maximum":${U64_MAX}}`);
    expect(written).toContain('"input_schema":{"maximum":1e400}');
    expect(written).toContain(`"schema":{"enum":[${BIG_ID}]}`);
    expect(written).toContain(`"name":"f","input":{"id":${BIG_ID}}`);
    // `input` on a block that is no tool call is read, not written on: a number as before.
    expect(written).toContain(`"text":"x","input":{"id":${JSON.stringify(Number(BIG_ID))}}`);
    // The rule's keys count below the top level only: a body's own `input` is the API's field.
    const top = `{"type":"tool_use","input":[${BIG_ID}],"schema":{"n":${BIG_ID}}}`;
    expect(JSON.stringify(bodyKeepingNumbers(top, JSON.parse(top)))).toBe(
      `{"type":"tool_use","input":[${JSON.stringify(Number(BIG_ID))}],"schema":{"n":${JSON.stringify(Number(BIG_ID))}}}`,
    );
    // No candidate: the parsed value is handed back as it was.
    const plain = { n: 1 };
    expect(bodyKeepingNumbers('{"n":1}', plain)).toBe(plain);
  });

  it('keeps a repeated key’s last value, and copes with any depth', () => {
    const repeated = `{"tools":[{"parameters":{"m":${BIG_ID},"m":1,"n":1,"n":${BIG_ID}}}]}`;
    expect(JSON.stringify(bodyKeepingNumbers(repeated, JSON.parse(repeated)))).toBe(
      `{"tools":[{"parameters":{"m":1,"n":${BIG_ID}}}]}`,
    );
    // Two texts of one double: the later one, as JSON.parse keeps the later value.
    const twice = `{"f":{"parameters":{"a":${U64_MAX}},"parameters":{"a":${U64_MAX_MINUS_ONE}}}}`;
    expect(JSON.stringify(bodyKeepingNumbers(twice, JSON.parse(twice)))).toBe(
      `{"f":{"parameters":{"a":${U64_MAX_MINUS_ONE}}}}`,
    );
    const reshaped = '{"f":{"parameters":{"0":1e400},"parameters":[2e400]}}';
    expect(JSON.stringify(bodyKeepingNumbers(reshaped, JSON.parse(reshaped)))).toBe(
      '{"f":{"parameters":[2e400]}}',
    );
    const reshapedBack = `{"f":{"parameters":[${U64_MAX}],"parameters":{"0":1.8446744073709552e19}}}`;
    expect(JSON.stringify(bodyKeepingNumbers(reshapedBack, JSON.parse(reshapedBack)))).toBe(
      '{"f":{"parameters":{"0":18446744073709552000}}}',
    );
    // The later text of one double, not an integer's digits: JSON.parse's double, as before.
    const laterFraction = `{"tools":[{"parameters":{"x":${U64_MAX},"x":1.8446744073709552e19}}]}`;
    expect(JSON.stringify(bodyKeepingNumbers(laterFraction, JSON.parse(laterFraction)))).toBe(
      '{"tools":[{"parameters":{"x":18446744073709552000}}]}',
    );
    // Deeper than a reviver's recursion goes (it failed at ~2,300 levels here), many numbers deep.
    const deep = `{"f":{"schema":${'['.repeat(5000)}${`${BIG_ID},`.repeat(5000)}1${']'.repeat(5000)}}}`;
    const kept = bodyKeepingNumbers(deep, JSON.parse(deep)) as { f: { schema: unknown } };
    let inner: unknown = kept.f.schema;
    for (let level = 1; level < 5000; level++) inner = (inner as unknown[])[0];
    const numbers = inner as unknown[];
    expect(numbers).toHaveLength(5001);
    expect(numbers.slice(0, 5000).every((item) => sourceJson.isRawJSON(item))).toBe(true);
    expect(numbers[5000]).toBe(1);
  });

  it(`keeps ${MOST_KEPT_NUMBERS.toLocaleString('en')} at most in one body; the rest as JSON.parse made them`, () => {
    const text = `{"f":{"schema":[${`${BIG_ID},`.repeat(MOST_KEPT_NUMBERS)}${BIG_ID}]}}`;
    const numbers = (bodyKeepingNumbers(text, JSON.parse(text)) as { f: { schema: unknown[] } }).f.schema;
    expect(numbers.filter((item) => sourceJson.isRawJSON(item))).toHaveLength(MOST_KEPT_NUMBERS);
    expect(numbers.at(-1)).toBe(Number(BIG_ID));
    // Past the cap, a key given twice still ends as JSON.parse's later value.
    const twice = `{"f":{"schema":{"x":${U64_MAX},"pad":[${`${BIG_ID},`.repeat(MOST_KEPT_NUMBERS)}1],"x":1.8446744073709552e19}}}`;
    const kept = bodyKeepingNumbers(twice, JSON.parse(twice)) as { f: { schema: { x: unknown } } };
    expect(kept.f.schema.x).toBe(Number(U64_MAX));
  });

  it('keeps every one in a tool call’s arguments, which are written on whole', () => {
    const value = parseKeepingNumbers(
      `{"id":${BIG_ID},"big":1e400,"safe":9007199254740991,"pi":3.14159265358979323846}`,
    );
    expect(JSON.stringify(value)).toBe(
      `{"id":${BIG_ID},"big":1e400,"safe":9007199254740991,"pi":3.141592653589793}`,
    );
    expect(parseKeepingNumbers('{"n":[1,2.5,-3]}')).toEqual({ n: [1, 2.5, -3] });
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
    const tools = (bound: string) =>
      `"tools":[{"type":"function","function":{"name":"f","parameters":{"maximum":${bound}}}}]`;
    const a = key(`{${messages},${tools(U64_MAX)}}`);
    const b = key(`{${messages},${tools(U64_MAX_MINUS_ONE)}}`);
    // An object that looks like a kept number's inside is not that number.
    const c = key(`{${messages},${tools(`{"rawJSON":"${U64_MAX}"}`)}}`);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(key(`{${messages}, ${tools(U64_MAX)}}`)).toBe(a);
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
      admin: { key: TEST_ADMIN_KEY },
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

  it('Responses translated for Anthropic: a function tool’s schema keeps its bound', async () => {
    const response = await post(
      '/v1/responses',
      `{"model":"claude-test","input":"hi","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"n":{"type":"integer","maximum":${U64_MAX}}}}}]}`,
    );
    expect(response.status).toBe(200);
    expect(only(anthropic).body.toString('utf8')).toContain(`"maximum":${U64_MAX}`);
  });

  it('a body sent as text/plain (or as curl -d sends it) keeps them too', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      openai.requests.length = 0;
      const body = `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"maximum":\n ${U64_MAX}}}}]}`;
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      });
      expect(response.status).toBe(200);
      expect(only(openai).body.toString('utf8')).toContain(`"maximum":${U64_MAX}`);
    }
  });

  it('where the gateway reads a value, such a number is what JSON.parse made of it, as before', async () => {
    // A Responses request translated for Anthropic reads a text part's `text`: forwarded as a string.
    const translated = await post(
      '/v1/responses',
      `{"model":"claude-test","input":[{"role":"user","content":[{"type":"input_text","text":${BIG_ID}}]}]}`,
    );
    expect(translated.status).toBe(200);
    expect(only(anthropic).json).toMatchObject({
      messages: [{ role: 'user', content: [{ type: 'text', text: String(Number(BIG_ID)) }] }],
    });
    // A chat request translated for Anthropic reads `response_format.type`: refused by name.
    const refused = await post(
      '/v1/chat/completions',
      `{"model":"claude-test","messages":[{"role":"user","content":"x"}],"response_format":{"type":${BIG_ID}}}`,
    );
    expect(refused.status).toBe(400);
    const answer = (await refused.json()) as { error: { type: string; param: string } };
    expect(answer.error).toMatchObject({ type: 'invalid_request_error', param: 'response_format' });
    expect(anthropic.requests).toHaveLength(1);
  });

  it('the admin API reads its numbers as before, whatever the body’s content type', async () => {
    for (const type of ['application/json', 'text/plain']) {
      const response = await fetch(`${gw.url}/admin/teams`, {
        method: 'POST',
        headers: { 'content-type': type, authorization: `Bearer ${TEST_ADMIN_KEY}` },
        body: `{"name":"team-${type.replace('/', '-')}","metadata":{"crm_id":${BIG_ID}}}`,
      });
      expect(response.status).toBe(201);
      expect(((await response.json()) as { metadata: unknown }).metadata).toEqual({ crm_id: Number(BIG_ID) });
    }
  });

  it('still refuses a body with __proto__ or broken JSON in OpenAI’s shape, numbers or not', async () => {
    const messages = '"messages":[{"role":"user","content":"hi"}]';
    for (const [body, message] of [
      [
        `{"model":"gpt-test",${messages},"tools":[{"type":"function","function":{"name":"f","parameters":{"__proto__":{"n":${BIG_ID}}}}}]}`,
        /"__proto__" key/,
      ],
      [`{"model":"gpt-test",${messages},"n":${BIG_ID}`, /parse the JSON body/],
    ] as const) {
      const response = await post('/v1/chat/completions', body);
      expect(response.status).toBe(400);
      const answer = (await response.json()) as { error: { type: string; message: string } };
      expect(answer.error.type).toBe('invalid_request_error');
      expect(answer.error.message).toMatch(message);
    }
    expect(openai.requests).toHaveLength(0);
  });
});
