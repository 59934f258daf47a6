import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseSplitter, splitEvents } from '../src/backends/sse-splitter.js';
import { MessagesStreamAssembler } from '../src/cache/messages-stream-assembler.js';
import { replayMessageAsStream } from '../src/cache/messages-stream-replay.js';
import { eventData } from '../src/pipeline/usage.js';

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------
// Fixtures

/** One event as Anthropic frames it on the wire. */
function wire(payload: Json): string {
  return `event: ${String(payload.type)}\ndata: ${JSON.stringify(payload)}\n\n`;
}

function body(events: Json[]): Buffer {
  return Buffer.from(events.map(wire).join(''), 'utf8');
}

const SIGNATURE = 'EqQBCkYIBxgCKkBz1d0l3qZ+Jm1w0wZ8pX3tQ2m5oLk9V7b6nYq==';

/**
 * What Anthropic streams for a request with extended thinking and a tool: a thinking block, a
 * text block, a tool_use block whose input comes in pieces cut mid-token (after an empty first
 * piece, as Anthropic does), pings, and usage split between message_start and message_delta.
 */
const RECORDED: Json[] = [
  {
    type: 'message_start',
    message: {
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 472,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 2048,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
        output_tokens: 1,
        service_tier: 'standard',
      },
    },
  },
  { type: 'ping' },
  {
    type: 'content_block_start',
    index: 0,
    content_block: { type: 'thinking', thinking: '', signature: '' },
  },
  { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'The user wants ' } },
  {
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'thinking_delta', thinking: 'the weather in Paris — 🌦 call the tool.' },
  },
  { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: SIGNATURE } },
  { type: 'content_block_stop', index: 0 },
  { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: "I'll check " } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'the current weather.' } },
  { type: 'content_block_stop', index: 1 },
  {
    type: 'content_block_start',
    index: 2,
    content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {} },
  },
  { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '' } },
  { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"locat' } },
  {
    type: 'content_block_delta',
    index: 2,
    delta: { type: 'input_json_delta', partial_json: 'ion": "Paris, FR", "unit": "cel' },
  },
  {
    type: 'content_block_delta',
    index: 2,
    delta: { type: 'input_json_delta', partial_json: 'sius", "days": 3}' },
  },
  { type: 'content_block_stop', index: 2 },
  {
    type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null },
    usage: { output_tokens: 219 },
  },
  { type: 'message_stop' },
];

/** The Message the same request returns without `stream`. */
const EXPECTED: Json = {
  id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [
    {
      type: 'thinking',
      thinking: 'The user wants the weather in Paris — 🌦 call the tool.',
      signature: SIGNATURE,
    },
    { type: 'text', text: "I'll check the current weather." },
    {
      type: 'tool_use',
      id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6',
      name: 'get_weather',
      input: { location: 'Paris, FR', unit: 'celsius', days: 3 },
    },
  ],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: {
    input_tokens: 472,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 2048,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    output_tokens: 219,
    service_tier: 'standard',
  },
};

const LONG_TEXT =
  'Paris is the capital of France. According to the document, it has been the seat of government ' +
  'since the 10th century, and its population is about 2.1 million people within the city limits — ' +
  'many more in the wider region (Île-de-France) 🗼.';

/**
 * A stored answer with the other block kinds and the newer Message fields: citations, a
 * redacted thinking block, a server tool call with its result, an empty tool input, a
 * stop sequence, usage with server tool counts, and stop_details / container.
 */
const RICH_ANSWER: Json = {
  id: 'msg_rich',
  type: 'message',
  role: 'assistant',
  model: 'claude-opus-4-1',
  content: [
    { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' },
    {
      type: 'server_tool_use',
      id: 'srvtoolu_014hJH82Qum7Td6UV8gDXThB',
      name: 'web_search',
      input: { query: 'paris population 2025' },
    },
    {
      type: 'web_search_tool_result',
      tool_use_id: 'srvtoolu_014hJH82Qum7Td6UV8gDXThB',
      content: [
        {
          type: 'web_search_result',
          title: 'Paris - Wikipedia',
          url: 'https://en.wikipedia.org/wiki/Paris',
          encrypted_content: 'EqgfCioIARgBIiQ3YTAwMjY1Mi1',
          page_age: 'April 30, 2025',
        },
      ],
    },
    {
      type: 'text',
      text: LONG_TEXT,
      citations: [
        {
          type: 'char_location',
          cited_text: 'Paris is the capital of France.',
          document_index: 0,
          document_title: 'Paris',
          start_char_index: 0,
          end_char_index: 31,
        },
        {
          type: 'web_search_result_location',
          cited_text: 'population of 2.1 million',
          url: 'https://en.wikipedia.org/wiki/Paris',
          title: 'Paris - Wikipedia',
          encrypted_index: 'Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm',
        },
      ],
    },
    { type: 'text', text: ' Done', citations: null },
    { type: 'tool_use', id: 'toolu_empty', name: 'get_time', input: {} },
  ],
  stop_reason: 'stop_sequence',
  stop_sequence: '\n\nHuman:',
  stop_details: null,
  container: null,
  usage: {
    input_tokens: 10,
    cache_creation_input_tokens: 1500,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 0 },
    output_tokens: 512,
    server_tool_use: { web_search_requests: 1 },
    service_tier: 'standard',
  },
};

// ---------------------------------------------------------------------------------------------------
// Helpers

/** Feeds the bytes through SseSplitter in small, odd-sized pieces, as they would come off a socket. */
function assembler(bytes: Buffer, pieceBytes = 7): MessagesStreamAssembler {
  const assembler = new MessagesStreamAssembler();
  const splitter = new SseSplitter();
  for (let at = 0; at < bytes.length; at += pieceBytes) {
    const block = splitter.push(bytes.subarray(at, at + pieceBytes));
    if (block) assembler.addBlock(block);
  }
  const rest = splitter.rest();
  if (rest) assembler.addBlock(rest);
  return assembler;
}

function assemble(bytes: Buffer): Json {
  const result = assembler(bytes);
  expect(result.complete).toBe(true);
  const answer = result.answer();
  if (!answer) throw new Error('a complete stream gave no answer');
  return answer;
}

/** The replayed events as [name, payload] pairs. */
function replayedEvents(bytes: Buffer): Array<{ name: string | undefined; data: Json }> {
  return splitEvents(bytes).map((event) => {
    const name = /^event: (.*)$/m.exec(event.toString('utf8'))?.[1];
    const data = eventData(event);
    if (!data) throw new Error(`not a JSON event: ${event.toString('utf8')}`);
    return { name, data };
  });
}

/** The recording with `change` applied to a copy of its events. */
function recordedWith(change: (events: Json[]) => Json[]): Buffer {
  return body(change(structuredClone(RECORDED)));
}

// ---------------------------------------------------------------------------------------------------
// Assembling

describe('MessagesStreamAssembler', () => {
  it('assembles a recorded stream (thinking, text, tool_use) into the Message a non-streamed request returns', () => {
    const answer = assemble(body(RECORDED));
    expect(answer).toEqual(EXPECTED);
    // Stored as JSON: nothing may hang on it that a JSON round trip loses or changes.
    expect(JSON.parse(JSON.stringify(answer))).toEqual(EXPECTED);
    expect(Object.keys(answer)).toEqual(Object.keys(EXPECTED));
  });

  it('takes parsed payloads through add() as well as raw blocks', () => {
    const result = new MessagesStreamAssembler();
    for (const event of RECORDED) result.add(structuredClone(event));
    expect(result.complete).toBe(true);
    expect(result.answer()).toEqual(EXPECTED);
    expect(result.endpoint).toBe('messages');
  });

  it('reads CRLF-framed events, and events split one byte at a time', () => {
    const crlf = Buffer.from(body(RECORDED).toString('utf8').replaceAll('\n', '\r\n'));
    expect(assemble(crlf)).toEqual(EXPECTED);
    const oneByte = assembler(body(RECORDED), 1);
    expect(oneByte.complete).toBe(true);
    expect(oneByte.answer()).toEqual(EXPECTED);
  });

  it('ignores ping and event types it does not know', () => {
    const bytes = recordedWith((events) => [
      ...events.slice(0, 3),
      { type: 'content_block_flux', index: 0, note: 'added by a later API version' },
      { type: 'ping' },
      ...events.slice(3),
    ]);
    expect(assemble(bytes)).toEqual(EXPECTED);
  });

  it('merges usage: message_delta fields win when not null, its output_tokens is the running total', () => {
    const bytes = recordedWith((events) => {
      const delta = events.at(-2) as Json;
      delta.usage = {
        input_tokens: 480,
        cache_read_input_tokens: null,
        output_tokens: 219,
        server_tool_use: { web_search_requests: 2 },
      };
      // Two deltas: the second repeats the total, it does not add to it.
      return [...events.slice(0, -1), delta, events.at(-1) as Json];
    });
    expect(assemble(bytes).usage).toEqual({
      ...(EXPECTED.usage as Json),
      input_tokens: 480,
      output_tokens: 219,
      server_tool_use: { web_search_requests: 2 },
    });
  });

  it('gives a tool call with no input pieces, or only empty ones, the input {}', () => {
    const bytes = recordedWith((events) =>
      events.filter(
        (event) =>
          !(
            event.type === 'content_block_delta' &&
            event.index === 2 &&
            (event.delta as Json).partial_json !== ''
          ),
      ),
    );
    const content = assemble(bytes).content as Json[];
    expect(content[2]).toEqual({ ...(EXPECTED.content as Json[])[2], input: {} });
    const none = recordedWith((events) =>
      events.filter((event) => !(event.type === 'content_block_delta' && event.index === 2)),
    );
    expect((assemble(none).content as Json[])[2]).toMatchObject({ input: {} });
  });

  it('keeps citations, stop_details and other newer Message fields', () => {
    const events = replayedEvents(replayMessageAsStream(RICH_ANSWER)).map((event) => event.data);
    // As Anthropic sends a cited text block: the start says `citations: []`, deltas fill it.
    expect(events).toContainEqual({
      type: 'content_block_start',
      index: 3,
      content_block: { type: 'text', text: '', citations: [] },
    });
    expect(assemble(body(events))).toEqual(RICH_ANSWER);
  });

  it('counts the stream finished on markDone() when the caller saw message_stop itself', () => {
    const result = assembler(recordedWith((events) => events.slice(0, -1)));
    expect(result.complete).toBe(false);
    result.markDone();
    expect(result.complete).toBe(true);
    expect(result.answer()).toEqual(EXPECTED);
  });

  it('does not let a caller change its answer by changing the events it was given', () => {
    const result = new MessagesStreamAssembler();
    const events = structuredClone(RECORDED);
    for (const event of events) result.add(event);
    ((events[7] as Json).content_block as Json).text = 'changed';
    expect(result.answer()).toEqual(EXPECTED);
  });
});

describe('MessagesStreamAssembler refuses what must never be stored', () => {
  const cases: Array<[string, (events: Json[]) => Json[]]> = [
    ['no message_stop (the stream was cut)', (events) => events.slice(0, -1)],
    ['no message_start', (events) => events.slice(1)],
    [
      'an error event mid-stream',
      (events) => [
        ...events.slice(0, 9),
        { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
        ...events.slice(9),
      ],
    ],
    [
      'an error event after message_stop',
      (events) => [...events, { type: 'error', error: { type: 'api_error', message: 'Internal' } }],
    ],
    [
      'a block never stopped',
      (events) => events.filter((event) => !(event.type === 'content_block_stop' && event.index === 1)),
    ],
    [
      'tool input that is not valid JSON',
      (events) =>
        events.map((event) =>
          event.type === 'content_block_delta' && (event.delta as Json).partial_json === 'sius", "days": 3}'
            ? { ...event, delta: { type: 'input_json_delta', partial_json: 'sius", "days": 3' } }
            : event,
        ),
    ],
    [
      'tool input that is JSON but not an object',
      (events) => [
        ...events
          .filter((event) => !(event.type === 'content_block_delta' && event.index === 2))
          .slice(0, -3),
        {
          type: 'content_block_delta',
          index: 2,
          delta: { type: 'input_json_delta', partial_json: '[1, 2]' },
        },
        ...events.slice(-3),
      ],
    ],
    [
      'no stop_reason',
      (events) =>
        events.map((event) =>
          event.type === 'message_delta'
            ? { ...event, delta: { stop_reason: null, stop_sequence: null } }
            : event,
        ),
    ],
    [
      'a delta for a block that was never started',
      (events) => [
        ...events.slice(0, -2),
        { type: 'content_block_delta', index: 7, delta: { type: 'text_delta', text: 'lost' } },
        ...events.slice(-2),
      ],
    ],
    [
      'a delta after its block stopped',
      (events) => [
        ...events.slice(0, -2),
        { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'late' } },
        ...events.slice(-2),
      ],
    ],
    [
      'a delta kind it cannot fold',
      (events) => [
        ...events.slice(0, 8),
        { type: 'content_block_delta', index: 1, delta: { type: 'hologram_delta', hologram: '…' } },
        ...events.slice(8),
      ],
    ],
    [
      'a gap in block indices (a block it never saw)',
      (events) => events.map((event) => (event.index === 2 ? { ...event, index: 3 } : event)),
    ],
    ['a second message_start', (events) => [events[0] as Json, ...events]],
  ];

  it('takes the unaltered recording as complete (the cases below differ from it only as named)', () => {
    expect(assembler(body(RECORDED)).complete).toBe(true);
  });

  for (const [name, change] of cases) {
    it(`is not complete after ${name}`, () => {
      const result = assembler(recordedWith(change));
      expect(result.complete).toBe(false);
      expect(result.answer()).toBeUndefined();
    });
  }

  it('sees an error named only on the event line', () => {
    const named = Buffer.concat([
      body(RECORDED.slice(0, 5)),
      Buffer.from('event: error\ndata: {"message":"upstream went away"}\n\n'),
      body(RECORDED.slice(5)),
    ]);
    expect(assembler(named).complete).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------
// Replaying

describe('replayMessageAsStream', () => {
  it('assembles back into the same answer, complete', () => {
    for (const answer of [EXPECTED, RICH_ANSWER]) {
      const result = assembler(replayMessageAsStream(answer));
      expect(result.complete).toBe(true);
      expect(result.answer()).toEqual(answer);
    }
  });

  it('writes Anthropic framing: every event named after its type, message_start first, message_stop last', () => {
    const events = replayedEvents(replayMessageAsStream(EXPECTED));
    for (const { name, data } of events) expect(name).toBe(data.type);
    expect(events[0]?.data.type).toBe('message_start');
    expect(events.at(-2)?.data.type).toBe('message_delta');
    expect(events.at(-1)?.data).toEqual({ type: 'message_stop' });
    // Block events come in index order, each block started, filled and stopped before the next.
    const blockIndices = events
      .filter(({ data }) => data.type === 'content_block_start' || data.type === 'content_block_stop')
      .map(({ data }) => `${String(data.type).slice(14)}${String(data.index)}`);
    expect(blockIndices).toEqual(['start0', 'stop0', 'start1', 'stop1', 'start2', 'stop2']);
  });

  it('puts the prompt counts in message_start with output_tokens 1, the final count in message_delta', () => {
    const events = replayedEvents(replayMessageAsStream(EXPECTED)).map((event) => event.data);
    const start = events[0]?.message as Json;
    expect(start).toEqual({
      ...EXPECTED,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...(EXPECTED.usage as Json), output_tokens: 1 },
    });
    expect(events.at(-2)).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: {
        output_tokens: 219,
        input_tokens: 472,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 2048,
      },
    });
  });

  it('leaves counts known only at the end (server tool use) to message_delta', () => {
    const events = replayedEvents(replayMessageAsStream(RICH_ANSWER)).map((event) => event.data);
    const startUsage = ((events[0] as Json).message as Json).usage as Json;
    expect(startUsage.server_tool_use).toBeNull();
    expect(startUsage.cache_creation).toEqual({
      ephemeral_5m_input_tokens: 1500,
      ephemeral_1h_input_tokens: 0,
    });
    expect(events.at(-2)?.usage).toMatchObject({
      output_tokens: 512,
      server_tool_use: { web_search_requests: 1 },
    });
  });

  it('never says more output in message_start than the answer has', () => {
    const empty: Json = {
      ...EXPECTED,
      content: [],
      stop_reason: 'end_turn',
      usage: { input_tokens: 3, output_tokens: 0 },
    };
    const start = replayedEvents(replayMessageAsStream(empty))[0]?.data.message as Json;
    expect(start.usage).toEqual({ input_tokens: 3, output_tokens: 0 });
    expect(assemble(replayMessageAsStream(empty))).toEqual(empty);
  });

  it('streams text, thinking and tool input in pieces, and the signature in one delta', () => {
    const deltas = replayedEvents(replayMessageAsStream(RICH_ANSWER))
      .map((event) => event.data)
      .filter((data) => data.type === 'content_block_delta')
      .map((data) => ({ index: data.index, delta: data.delta as Json }));
    const textPieces = deltas.filter((d) => d.index === 3 && d.delta.type === 'text_delta');
    expect(textPieces.length).toBeGreaterThan(3);
    expect(textPieces.map((d) => d.delta.text).join('')).toBe(LONG_TEXT);
    expect(deltas.filter((d) => d.index === 3 && d.delta.type === 'citations_delta')).toHaveLength(2);
    // The empty tool input needs no delta; the server tool's input comes as JSON text.
    expect(deltas.filter((d) => d.index === 5)).toEqual([]);
    expect(
      deltas
        .filter((d) => d.index === 1)
        .map((d) => d.delta.partial_json)
        .join(''),
    ).toBe(JSON.stringify({ query: 'paris population 2025' }));
    const thinking = replayedEvents(replayMessageAsStream(EXPECTED))
      .map((event) => event.data)
      .filter((data) => data.type === 'content_block_delta' && data.index === 0)
      .map((data) => data.delta as Json);
    expect(thinking.at(-1)).toEqual({ type: 'signature_delta', signature: SIGNATURE });
    expect(thinking.slice(0, -1).every((delta) => delta.type === 'thinking_delta')).toBe(true);
  });

  it('depends only on the answer', () => {
    expect(
      replayMessageAsStream(RICH_ANSWER).equals(replayMessageAsStream(structuredClone(RICH_ANSWER))),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// The real SDK reads the replay

describe('the Anthropic SDK reads a replayed answer', () => {
  let server: Server;
  let client: Anthropic;
  /** What the next /v1/messages request is answered with. */
  let next: Buffer = Buffer.alloc(0);
  const requests: Json[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/messages') {
          res.writeHead(404).end();
          return;
        }
        requests.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
        });
        // Written in odd-sized pieces so events reach the SDK cut across reads.
        for (let at = 0; at < next.length; at += 13) res.write(next.subarray(at, at + 13));
        res.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    client = new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'test-key', maxRetries: 0 });
  });

  afterAll(async () => {
    server.close();
    await once(server, 'close');
  });

  for (const [name, answer] of [
    ['thinking, text and tool_use', EXPECTED],
    ['redacted thinking, server tools, citations and stop details', RICH_ANSWER],
  ] as const) {
    it(`gives finalMessage() the stored answer, usage included (${name})`, async () => {
      next = replayMessageAsStream(answer);
      const stream = client.messages.stream({
        model: String(answer.model),
        max_tokens: 1024,
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      });
      const texts: string[] = [];
      stream.on('text', (text) => texts.push(text));
      const final = await stream.finalMessage();
      expect(requests.at(-1)).toMatchObject({ stream: true });
      // The SDK adds `parsed_output: null` to every final message (structured outputs).
      expect(final).toEqual({ ...answer, parsed_output: null });
      expect(final.usage).toEqual(answer.usage);
      const textBlocks = (answer.content as Json[]).filter((block) => block.type === 'text');
      expect(texts.join('')).toBe(textBlocks.map((block) => block.text).join(''));
    });
  }

  it('gives finalMessage() the answer assembled from a recorded stream, replayed', async () => {
    const stored = assemble(body(RECORDED));
    next = replayMessageAsStream(JSON.parse(JSON.stringify(stored)) as Json);
    const final = await client.messages
      .stream({ model: 'claude-sonnet-4-5', max_tokens: 1024, messages: [{ role: 'user', content: 'x' }] })
      .finalMessage();
    expect(final).toEqual({ ...EXPECTED, parsed_output: null });
  });
});
