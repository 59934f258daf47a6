import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, type RecordedRequest } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * The gateway's upstream keys never reach a client or a log however the upstream's JSON spells
 * them: a JSON string may write any character as `\uXXXX` (either hex case) and `/` as `\/`, and
 * a client's JSON.parse turns those back into the key. Real fake upstreams on 127.0.0.1
 * (Anthropic, OpenAI-compatible, Azure) answer errors with their key spelled so, through the
 * real gateway; bodies that hold no secret still reach the client byte for byte.
 */

const ANTHROPIC_KEY = 'sk-ant-api03/Escaped+Key_0123456789';
const OPENAI_KEY = 'sk-proj-escaped/Key+ABCdef0123456789';
const AZURE_KEY = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const KEYS = [ANTHROPIC_KEY, OPENAI_KEY, AZURE_KEY];
const UPSTREAM_MODEL = 'claude-sonnet-4-5';

type Handler = (request: RecordedRequest, res: ServerResponse) => void;

/** One fake upstream whose answer each test sets. */
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
}

const u = (char: string, upper: boolean): string => {
  const hex = (char.codePointAt(0) ?? 0).toString(16).padStart(4, '0');
  return `\\u${upper ? hex.toUpperCase() : hex}`;
};

/** Ways an upstream's JSON may write a key, each as it would sit inside a JSON string. */
const SPELLINGS: Record<string, (key: string) => string> = {
  'the first character as \\u (lower-case hex)': (key) => u(key[0] ?? '', false) + key.slice(1),
  'the slash as \\/': (key) => key.replaceAll('/', '\\/'),
  'every character as \\u (upper-case hex)': (key) => [...key].map((char) => u(char, true)).join(''),
  'a mix of literal, \\u in both cases and \\/': (key) =>
    [...key].map((char, i) => (char === '/' ? '\\/' : i % 3 === 0 ? u(char, i % 2 === 0) : char)).join(''),
};

/** A JSON text (bytes as sent) whose message holds the spelled key, behind an escaped backslash. */
function withSpelledKey(spelled: string): string {
  return `bad key \\\\${spelled} at C:\\\\keys`;
}

function sse(type: string, data: string): string {
  return `event: ${type}\ndata: ${data}\n\n`;
}

const MESSAGE_START = sse(
  'message_start',
  JSON.stringify({
    type: 'message_start',
    message: {
      id: 'msg_01Escapes',
      type: 'message',
      role: 'assistant',
      model: UPSTREAM_MODEL,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 1 },
    },
  }),
);
const BLOCK_START = sse(
  'content_block_start',
  '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
);
const textDelta = (text: string) =>
  sse(
    'content_block_delta',
    JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
  );
const chatChunk = (content: string) =>
  `data: ${JSON.stringify({
    id: 'chatcmpl-escapes',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  })}\n\n`;

function jsonWith(status: number, body: string): Handler {
  return (_request, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  };
}

function streamWith(contentType: string, ...parts: string[]): Handler {
  return (_request, res) => {
    res.writeHead(200, { 'content-type': contentType });
    for (const part of parts) res.write(part);
    res.end();
  };
}

const claude = new ScriptedUpstream();
const oai = new ScriptedUpstream();
const azure = new ScriptedUpstream();
let oaiHost = '';
let gw: TestGateway;
/** Everything a client received in this file: no key may be in any of it. */
const seen: string[] = [];

beforeAll(async () => {
  const [claudeUrl, oaiUrl, azureUrl] = await Promise.all([
    claude.start('/v1/messages'),
    oai.start('/v1/chat/completions'),
    azure.start('/openai/deployments/gpt-dep/chat/completions'),
  ]);
  oaiHost = new URL(oaiUrl).host;
  const once = { retry: { attempts: 1 }, circuit: { enabled: false } };
  gw = await startGateway({
    backends: {
      claude: { type: 'anthropic', baseUrl: claudeUrl, apiKey: ANTHROPIC_KEY },
      oai: { type: 'openai', baseUrl: `${oaiUrl}/v1`, apiKey: OPENAI_KEY },
      az: { type: 'azure', baseUrl: azureUrl, apiKey: AZURE_KEY },
    },
    models: {
      claude: { backend: 'claude', model: UPSTREAM_MODEL, ...once },
      gpt: { backend: 'oai', model: 'gpt-4o-mini', ...once },
      'gpt-azure': { backend: 'az', model: 'gpt-dep', ...once },
    },
  });
});

beforeEach(() => {
  for (const upstream of [claude, oai, azure]) upstream.upstream.requests.length = 0;
});

afterAll(async () => {
  // Logs parsed, so that a key the log line escaped would be found as well.
  const logs = JSON.stringify(gw?.logs ?? []);
  for (const text of [...seen, logs]) for (const key of KEYS) expect(text).not.toContain(key);
  await gw?.close();
  await Promise.all([claude, oai, azure].map((upstream) => upstream.upstream.stop()));
});

async function post(path: string, body: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const response = await fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(path === '/v1/messages' ? { 'anthropic-version': '2023-06-01' } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  seen.push(text);
  return { status: response.status, text };
}

function messages(extra: Record<string, unknown> = {}) {
  return post('/v1/messages', {
    model: 'claude',
    max_tokens: 50,
    messages: [{ role: 'user', content: 'hi' }],
    ...extra,
  });
}

function chat(model: string, extra: Record<string, unknown> = {}) {
  return post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], ...extra });
}

/** The JSON values of an SSE text's `data:` lines, `[DONE]` left out. */
function dataOf(text: string): unknown[] {
  return [...text.matchAll(/^data: ?(.*)$/gm)]
    .map((match) => match[1] ?? '')
    .filter((data) => data !== '[DONE]')
    .map((data) => JSON.parse(data) as unknown);
}

/** What a client reading the text as JSON sees: never the key, and `[redacted]` where it was. */
function expectScrubbed(parsed: unknown, key: string): void {
  const text = JSON.stringify(parsed);
  expect(text).not.toContain(key);
  expect(text).toContain('[redacted]');
}

describe.each(Object.entries(SPELLINGS))('a key spelled with %s', (_name, spell) => {
  it('is scrubbed from an Anthropic 4xx relayed on /v1/messages', async () => {
    const body = `{"type":"error","error":{"type":"invalid_request_error","message":"${withSpelledKey(spell(ANTHROPIC_KEY))}"}}`;
    claude.handler = jsonWith(400, body);
    const { status, text } = await messages();
    expect(status).toBe(400);
    const parsed = JSON.parse(text) as { error: { type: string; message: string } };
    expect(parsed.error.type).toBe('invalid_request_error');
    expect(parsed.error.message).toBe('bad key \\[redacted] at C:\\keys');
    expectScrubbed(parsed, ANTHROPIC_KEY);
  });

  it('is scrubbed from an Anthropic 4xx translated for the chat surface', async () => {
    const body = `{"type":"error","error":{"type":"invalid_request_error","message":"${withSpelledKey(spell(ANTHROPIC_KEY))}"}}`;
    claude.handler = jsonWith(400, body);
    const { status, text } = await chat('claude');
    expect(status).toBe(400);
    expectScrubbed(JSON.parse(text), ANTHROPIC_KEY);
  });

  it('is scrubbed from an error event of an Anthropic pass-through stream, the events before it untouched', async () => {
    const before = MESSAGE_START + BLOCK_START + textDelta('Hel\\lo "there"');
    const event = sse(
      'error',
      `{"type":"error","error":{"type":"api_error","message":"${withSpelledKey(spell(ANTHROPIC_KEY))}"}}`,
    );
    // Cut inside the key: the scrubber must see the event whole.
    const cut = event.indexOf('bad key') + 12;
    claude.handler = streamWith('text/event-stream', before, event.slice(0, cut), event.slice(cut));
    const { status, text } = await messages({ stream: true });
    expect(status).toBe(200);
    expect(text.startsWith(before)).toBe(true);
    const last = dataOf(text).at(-1) as { type: string; error: { message: string } };
    expect(last.type).toBe('error');
    expect(last.error.message).toBe('bad key \\[redacted] at C:\\keys');
    expectScrubbed(last, ANTHROPIC_KEY);
  });

  it('is scrubbed from an OpenAI 4xx relayed as the upstream wrote it', async () => {
    const body = `{"error":{"message":"${withSpelledKey(spell(OPENAI_KEY))}","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`;
    oai.handler = jsonWith(400, body);
    const { status, text } = await chat('gpt');
    expect(status).toBe(400);
    const parsed = JSON.parse(text) as { error: { message: string } };
    expect(parsed.error.message).toBe('bad key \\[redacted] at C:\\keys');
    expectScrubbed(parsed, OPENAI_KEY);
  });

  it('is scrubbed from a 200 whose JSON is an error (the client is shown it as one)', async () => {
    const body = `{"error":{"message":"${withSpelledKey(spell(OPENAI_KEY))}","type":"invalid_request_error","param":null,"code":null}}`;
    oai.handler = jsonWith(200, body);
    const { status, text } = await chat('gpt');
    expect(status).toBe(400);
    expectScrubbed(JSON.parse(text), OPENAI_KEY);
  });

  it('is scrubbed from an OpenAI 5xx message, which the gateway also logs', async () => {
    const body = `{"error":{"message":"${withSpelledKey(spell(OPENAI_KEY))}","type":"server_error","param":null,"code":null}}`;
    oai.handler = jsonWith(500, body);
    const logged = gw.logs.length;
    const { status, text } = await chat('gpt');
    expect(status).toBe(502);
    expectScrubbed(JSON.parse(text), OPENAI_KEY);
    expectScrubbed(gw.logs.slice(logged), OPENAI_KEY);
  });

  it('is scrubbed from an error event of an OpenAI stream, the chunks before it untouched', async () => {
    const before = chatChunk('Hello') + chatChunk(' th\\ere');
    const event = `data: {"error":{"message":"${withSpelledKey(spell(OPENAI_KEY))}","type":"server_error","param":null,"code":null}}\n\n`;
    oai.handler = streamWith('text/event-stream; charset=utf-8', before, event);
    const { status, text } = await chat('gpt', { stream: true });
    expect(status).toBe(200);
    expect(text.startsWith(before)).toBe(true);
    const errors = dataOf(text).filter((data) => (data as { error?: unknown }).error !== undefined);
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expectScrubbed(error, OPENAI_KEY);
  });

  it('is scrubbed from an OpenAI stream whose first event is the error', async () => {
    const event = `data: {"error":{"message":"${withSpelledKey(spell(OPENAI_KEY))}","type":"invalid_request_error","param":null,"code":null}}\n\n`;
    oai.handler = streamWith('text/event-stream', event);
    const { status, text } = await chat('gpt', { stream: true });
    expect(status).toBe(400);
    expectScrubbed(JSON.parse(text), OPENAI_KEY);
  });

  it('is scrubbed from an Azure 4xx', async () => {
    const body = `{"error":{"code":"401","message":"Access denied for key ${withSpelledKey(spell(AZURE_KEY))}.","type":"invalid_request_error","param":null}}`;
    azure.handler = jsonWith(400, body);
    const { status, text } = await chat('gpt-azure');
    expect(status).toBe(400);
    expect(azure.upstream.requests[0]?.headers['api-key']).toBe(AZURE_KEY);
    expectScrubbed(JSON.parse(text), AZURE_KEY);
  });
});

describe('a body that holds no secret', () => {
  // Escapes of every kind, a big integer a parse would round, and no key in any spelling.
  const message = 'caf\\u00E9 \\u0073k-not-our-key \\/ \\"quoted\\" \\\\ \\n';
  const bigNumber = '123456789012345678901234567890';

  it('reaches an Anthropic client byte for byte', async () => {
    const body = `{"type":"error", "error":{"type":"invalid_request_error","message":"${message}","n":${bigNumber}}}`;
    claude.handler = jsonWith(400, body);
    const { status, text } = await messages();
    expect(status).toBe(400);
    expect(text).toBe(body);
  });

  it('reaches an OpenAI client byte for byte', async () => {
    const body = `{"error":{"message":"${message}","type":"invalid_request_error","param":null,"code":null,"n":${bigNumber}}}`;
    oai.handler = jsonWith(400, body);
    const { status, text } = await chat('gpt');
    expect(status).toBe(400);
    expect(text).toBe(body);
  });

  it('in an Anthropic error event goes byte for byte', async () => {
    const events =
      MESSAGE_START +
      BLOCK_START +
      textDelta('fine') +
      sse('error', `{"type":"error","error":{"type":"api_error","message":"${message}","n":${bigNumber}}}`);
    claude.handler = streamWith('text/event-stream', events);
    const { text } = await messages({ stream: true });
    expect(text).toBe(events);
  });

  it('in an OpenAI error event goes byte for byte, and the model may name the upstream’s host', async () => {
    const events =
      chatChunk(`see http://${oaiHost}/ and \\u00e9`) +
      `data: {"error":{"message":"${message}","type":"server_error","param":null,"code":null,"n":${bigNumber}}}\n\n`;
    oai.handler = streamWith('text/event-stream', events);
    const { text } = await chat('gpt', { stream: true });
    expect(text.startsWith(events)).toBe(true);
  });
});

describe('the Anthropic SDK', () => {
  it('never sees the key of an escaped pass-through 4xx', async () => {
    const spelled = SPELLINGS['every character as \\u (upper-case hex)']?.(ANTHROPIC_KEY) ?? '';
    claude.handler = jsonWith(
      403,
      `{"type":"error","error":{"type":"permission_error","message":"Your API key ${spelled} may not"}}`,
    );
    const error = await new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 }).messages
      .create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(Anthropic.PermissionDeniedError);
    const said = JSON.stringify((error as InstanceType<typeof Anthropic.APIError>).error);
    seen.push(said, String((error as Error).message));
    expect(said).not.toContain(ANTHROPIC_KEY);
    expect(said).toContain('Your API key [redacted] may not');
  });
});

describe('the OpenAI SDK', () => {
  it('never sees the key of an escaped 4xx', async () => {
    const spelled = SPELLINGS['a mix of literal, \\u in both cases and \\/']?.(OPENAI_KEY) ?? '';
    oai.handler = jsonWith(
      400,
      `{"error":{"message":"key ${spelled} refused","type":"invalid_request_error","param":null,"code":null}}`,
    );
    const error = await new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 }).chat.completions
      .create({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }] })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const message = String((error as Error).message);
    seen.push(message);
    expect(message).toContain('key [redacted] refused');
  });
});
