import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseSplitter, splitEvents } from '../src/backends/sse-splitter.js';
import { type CacheStreamEndpoint, StreamAssembler } from '../src/cache/stream-assembler.js';
import { replayAsJson, replayAsStream } from '../src/cache/stream-replay.js';
import { eventData } from '../src/pipeline/usage.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
} from './support/spec-validator.js';

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------
// Helpers

/** What a JSON round trip would make of a value anyway (undefined fields vanish). */
function normalised<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function withoutUsage(answer: Json): Json {
  const { usage: _usage, ...rest } = answer;
  return rest;
}

/** Feeds the bytes through SseSplitter in small, odd-sized pieces, as they would come off a socket. */
function assembler(body: Buffer, endpoint: CacheStreamEndpoint, pieceBytes = 7): StreamAssembler {
  const assembler = new StreamAssembler(endpoint);
  const splitter = new SseSplitter();
  for (let at = 0; at < body.length; at += pieceBytes) {
    const block = splitter.push(body.subarray(at, at + pieceBytes));
    if (block) assembler.addBlock(block);
  }
  const rest = splitter.rest();
  if (rest) assembler.addBlock(rest);
  return assembler;
}

function assemble(body: Buffer, endpoint: CacheStreamEndpoint): Json | undefined {
  const result = assembler(body, endpoint);
  expect(result.complete).toBe(true);
  return result.answer();
}

function sseBody(events: Array<Json | '[DONE]'>): Buffer {
  return Buffer.from(
    events.map((event) => `data: ${event === '[DONE]' ? event : JSON.stringify(event)}\n\n`).join(''),
  );
}

/** The JSON payloads of a replayed body, and whether it ended with [DONE]. */
function replayedChunks(body: Buffer): { chunks: Json[]; done: boolean } {
  const events = splitEvents(body);
  const chunks = events.map(eventData).filter((chunk): chunk is Json => chunk !== undefined);
  const last = events.at(-1)?.toString('utf8');
  return { chunks, done: last === 'data: [DONE]\n\n' && chunks.length === events.length - 1 };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// ---------------------------------------------------------------------------------------------------
// Fixtures: whole answers as the non-streamed endpoints return them

const USAGE = {
  prompt_tokens: 19,
  completion_tokens: 64,
  total_tokens: 83,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};

function chatAnswer(choices: Json[], extra: Json = {}): Json {
  return {
    id: 'chatcmpl-CacheReplay123',
    object: 'chat.completion',
    created: 1_741_570_283,
    model: 'gpt-4o-2024-08-06',
    choices,
    usage: USAGE,
    service_tier: 'default',
    system_fingerprint: 'fp_f5bdcc3276',
    ...extra,
  };
}

function message(content: string | null, extra: Json = {}): Json {
  return { role: 'assistant', content, refusal: null, annotations: [], ...extra };
}

function choice(index: number, msg: Json, finish = 'stop', logprobs: Json | null = null): Json {
  return { index, message: msg, logprobs, finish_reason: finish };
}

const LONG_TEXT =
  'The image shows a wooden boardwalk extending through a lush green marshland. ' +
  'The sky is blue with some scattered clouds, and the scene is calm and peaceful: ' +
  'a nice place for a walk on a sunny afternoon.';

const UNICODE_TEXT =
  'Grüße aus Zürich! 你好，世界。🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 ' +
  'Family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵 math: 𝒳𝒴𝒵𝒳𝒴𝒵𝒳𝒴𝒵𝒳𝒴𝒵𝒳𝒴𝒵𝒳𝒴𝒵𝒳𝒴𝒵 combining: e\u0301e\u0301 end.';

const LONG_ARGUMENTS = JSON.stringify({
  location: 'Paris, France',
  unit: 'celsius',
  days: Array.from({ length: 20 }, (_, i) => ({ day: i + 1, note: `forecast for day ${i + 1} ☀️` })),
});

const TOOL_CALLS = [
  {
    id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA',
    type: 'function',
    function: { name: 'get_weather', arguments: LONG_ARGUMENTS },
  },
  {
    id: 'call_ABCabc123456789012345678',
    type: 'function',
    function: { name: 'get_time', arguments: '{"timezone":"Europe/Paris"}' },
  },
];

function tokenLogprob(token: string, logprob: number): Json {
  return {
    token,
    logprob,
    bytes: [...Buffer.from(token, 'utf8')],
    top_logprobs: [
      { token, logprob, bytes: [...Buffer.from(token, 'utf8')] },
      { token: 'x', logprob: logprob - 3, bytes: [120] },
    ],
  };
}

const CHAT_ANSWERS: Record<string, Json> = {
  plain: chatAnswer([choice(0, message(LONG_TEXT))]),
  unicode: chatAnswer([choice(0, message(UNICODE_TEXT))]),
  'tool calls': chatAnswer([choice(0, message(null, { tool_calls: TOOL_CALLS }), 'tool_calls')]),
  'content and a tool call': chatAnswer([
    choice(0, message('Let me check the weather.', { tool_calls: [TOOL_CALLS[1]] }), 'tool_calls'),
  ]),
  refusal: chatAnswer([
    choice(0, message(null, { refusal: "I'm sorry, but I can't assist with that request." })),
  ]),
  'n=3': chatAnswer([
    choice(0, message('First answer: the sky is blue because of Rayleigh scattering.')),
    choice(1, message('Second answer, a little shorter.'), 'length'),
    choice(2, message('')),
  ]),
  logprobs: chatAnswer([
    choice(0, message('Hello there!'), 'stop', {
      content: [tokenLogprob('Hello', -0.0001), tokenLogprob(' there', -0.31), tokenLogprob('!', -0.002)],
      refusal: null,
    }),
  ]),
  'no usage, no fingerprint, no tier': (() => {
    const {
      usage: _u,
      system_fingerprint: _s,
      service_tier: _t,
      ...rest
    } = chatAnswer([choice(0, message('Short.'))]);
    return rest;
  })(),
  'null fingerprint and a provider field': chatAnswer([choice(0, message('Hi'))], {
    system_fingerprint: null,
    x_provider: { region: 'eu-west', cached: false },
  }),
};

function legacyAnswer(choices: Json[], usage: Json | undefined = USAGE): Json {
  return {
    id: 'cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7',
    object: 'text_completion',
    created: 1_589_478_378,
    model: 'gpt-3.5-turbo-instruct',
    system_fingerprint: 'fp_44709d6fcb',
    choices,
    ...(usage ? { usage } : {}),
  };
}

const LEGACY_ANSWERS: Record<string, Json> = {
  'n=2': legacyAnswer([
    { index: 0, text: `\n\n${LONG_TEXT}`, logprobs: null, finish_reason: 'stop' },
    { index: 1, text: '\n\nThis is indeed a test 🎉', logprobs: null, finish_reason: 'length' },
  ]),
  logprobs: legacyAnswer(
    [
      {
        index: 0,
        text: ' Hello world',
        logprobs: {
          tokens: [' Hello', ' world'],
          token_logprobs: [-0.5, -0.25],
          top_logprobs: [{ ' Hello': -0.5 }, { ' world': -0.25 }],
          text_offset: [10, 16],
        },
        finish_reason: 'stop',
      },
    ],
    undefined,
  ),
};

// ---------------------------------------------------------------------------------------------------

describe('replay then assemble gives the answer back', () => {
  for (const [name, answer] of Object.entries(CHAT_ANSWERS)) {
    for (const includeUsage of [true, false]) {
      it(`chat: ${name} (includeUsage: ${includeUsage})`, () => {
        expectChatCompletion(answer);
        const body = replayAsStream(answer, 'chat.completions', { includeUsage });
        const assembled = assemble(body, 'chat.completions');
        expect(assembled).toEqual(normalised(includeUsage ? answer : withoutUsage(answer)));
        expectChatCompletion(assembled);
      });
    }
  }

  for (const [name, answer] of Object.entries(LEGACY_ANSWERS)) {
    for (const includeUsage of [true, false]) {
      it(`legacy: ${name} (includeUsage: ${includeUsage})`, () => {
        expectCompletion(answer);
        const body = replayAsStream(answer, 'completions', { includeUsage });
        const assembled = assemble(body, 'completions');
        expect(assembled).toEqual(normalised(includeUsage ? answer : withoutUsage(answer)));
        expectCompletion(assembled);
      });
    }
  }

  it('also when the stream is fed one byte at a time and whole', () => {
    const answer = CHAT_ANSWERS['tool calls'] ?? {};
    const body = replayAsStream(answer, 'chat.completions', { includeUsage: true });
    for (const pieceBytes of [1, body.length]) {
      const result = assembler(body, 'chat.completions', pieceBytes);
      expect(result.complete).toBe(true);
      expect(result.answer()).toEqual(normalised(answer));
    }
  });

  it('assembles events passed one by one with add()', () => {
    const answer = CHAT_ANSWERS['n=3'] ?? {};
    const { chunks } = replayedChunks(replayAsStream(answer, 'chat.completions', { includeUsage: true }));
    const result = new StreamAssembler('chat.completions');
    for (const chunk of chunks) result.add(chunk);
    expect(result.complete).toBe(false);
    expect(result.answer()).toBeUndefined();
    result.addBlock(Buffer.from('data: [DONE]\n\n'));
    expect(result.answer()).toEqual(normalised(answer));
  });
});

describe('replayed streams', () => {
  it('validate chunk by chunk against the spec and end with [DONE]', () => {
    for (const answer of Object.values(CHAT_ANSWERS)) {
      for (const includeUsage of [true, false]) {
        const { chunks, done } = replayedChunks(replayAsStream(answer, 'chat.completions', { includeUsage }));
        expect(done).toBe(true);
        for (const chunk of chunks) expectChatCompletionChunk(chunk);
      }
    }
    for (const answer of Object.values(LEGACY_ANSWERS)) {
      for (const includeUsage of [true, false]) {
        const { chunks, done } = replayedChunks(replayAsStream(answer, 'completions', { includeUsage }));
        expect(done).toBe(true);
        for (const chunk of chunks) expectCompletionChunk(chunk);
      }
    }
  });

  it('carry usage: null on every chat chunk and a final usage chunk only when usage was asked for', () => {
    const answer = CHAT_ANSWERS.plain ?? {};
    const withUsage = replayedChunks(
      replayAsStream(answer, 'chat.completions', { includeUsage: true }),
    ).chunks;
    const last = withUsage.at(-1);
    expect(last).toMatchObject({ object: 'chat.completion.chunk', choices: [], usage: USAGE });
    for (const chunk of withUsage.slice(0, -1)) expect(chunk.usage).toBeNull();

    const without = replayedChunks(
      replayAsStream(answer, 'chat.completions', { includeUsage: false }),
    ).chunks;
    for (const chunk of without) expect(chunk).not.toHaveProperty('usage');
    expect(without.every((chunk) => Array.isArray(chunk.choices) && chunk.choices.length === 1)).toBe(true);

    // An answer without usage gets no usage chunk, even when asked.
    const noUsage = CHAT_ANSWERS['no usage, no fingerprint, no tier'] ?? {};
    const chunks = replayedChunks(replayAsStream(noUsage, 'chat.completions', { includeUsage: true })).chunks;
    expect(chunks.every((chunk) => Array.isArray(chunk.choices) && chunk.choices.length === 1)).toBe(true);
  });

  it('copy id, created, model, system_fingerprint and service_tier onto every chunk, never obfuscation', () => {
    const answer = CHAT_ANSWERS.plain ?? {};
    const { chunks } = replayedChunks(replayAsStream(answer, 'chat.completions', { includeUsage: true }));
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({
        id: answer.id,
        object: 'chat.completion.chunk',
        created: answer.created,
        model: answer.model,
        system_fingerprint: answer.system_fingerprint,
        service_tier: answer.service_tier,
      });
      expect(chunk).not.toHaveProperty('obfuscation');
    }
  });

  it('open with the role, then deliver content incrementally, then an empty delta with the finish reason', () => {
    const answer = CHAT_ANSWERS.plain ?? {};
    const { chunks } = replayedChunks(replayAsStream(answer, 'chat.completions', { includeUsage: false }));
    const deltas = chunks.map((chunk) => (chunk.choices as Json[])[0]);
    expect(deltas[0]).toMatchObject({
      index: 0,
      delta: { role: 'assistant', content: '' },
      finish_reason: null,
    });
    expect(deltas.at(-1)).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' });
    const pieces = deltas.slice(1, -1).map((d) => (d?.delta as Json | undefined)?.content as string);
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(LONG_TEXT);
    for (const piece of pieces) expect(piece.length).toBeLessThanOrEqual(41);
  });

  it('never cut a surrogate pair', () => {
    const answer = CHAT_ANSWERS.unicode ?? {};
    const { chunks } = replayedChunks(replayAsStream(answer, 'chat.completions', { includeUsage: false }));
    const pieces = chunks
      .map((chunk) => ((chunk.choices as Json[])[0]?.delta as Json | undefined)?.content)
      .filter((piece): piece is string => typeof piece === 'string' && piece !== '');
    expect(pieces.length).toBeGreaterThan(3);
    for (const piece of pieces) expect(piece).not.toMatch(LONE_SURROGATE);
    expect(pieces.join('')).toBe(UNICODE_TEXT);
  });

  it('never cut a surrogate pair, whatever the offset of the emoji run', () => {
    for (const prefix of ['', 'a', 'ab', 'abc', 'a b', 'x'.repeat(19)]) {
      for (const run of ['🎉'.repeat(60), '𝒳'.repeat(45), '👨‍👩‍👧‍👦'.repeat(12)]) {
        const text = prefix + run;
        const answer = chatAnswer([choice(0, message(text))]);
        const { chunks } = replayedChunks(
          replayAsStream(answer, 'chat.completions', { includeUsage: false }),
        );
        const pieces = chunks
          .map((chunk) => ((chunk.choices as Json[])[0]?.delta as Json | undefined)?.content)
          .filter((piece): piece is string => typeof piece === 'string');
        for (const piece of pieces) expect(piece).not.toMatch(LONE_SURROGATE);
        expect(pieces.join('')).toBe(text);
        const legacy = legacyAnswer([{ index: 0, text, logprobs: null, finish_reason: 'stop' }]);
        const legacyChunks = replayedChunks(
          replayAsStream(legacy, 'completions', { includeUsage: false }),
        ).chunks;
        for (const chunk of legacyChunks)
          expect((chunk.choices as Json[])[0]?.text).not.toMatch(LONE_SURROGATE);
      }
    }
  });

  it('are deterministic', () => {
    for (const answer of Object.values(CHAT_ANSWERS)) {
      const a = replayAsStream(answer, 'chat.completions', { includeUsage: true });
      const b = replayAsStream(structuredClone(answer), 'chat.completions', { includeUsage: true });
      expect(a.equals(b)).toBe(true);
    }
  });

  it('replayAsJson is the answer as JSON', () => {
    const answer = CHAT_ANSWERS['tool calls'] ?? {};
    expect(JSON.parse(replayAsJson(answer).toString('utf8'))).toEqual(answer);
  });
});

// ---------------------------------------------------------------------------------------------------
// A stream written the way OpenAI sends them

const BASE = {
  id: 'chatcmpl-Bx7real',
  object: 'chat.completion.chunk',
  created: 1_741_570_283,
  model: 'gpt-4o-2024-08-06',
  service_tier: 'default',
  system_fingerprint: 'fp_f5bdcc3276',
};

function realChunk(choices: Json[], extra: Json = {}): Json {
  return { ...BASE, choices, usage: null, obfuscation: 'pL8s2', ...extra };
}

function delta(index: number, d: Json, finish: string | null = null): Json {
  return { index, delta: d, logprobs: null, finish_reason: finish };
}

const REAL_STREAM: Array<Json | '[DONE]'> = [
  realChunk([delta(0, { role: 'assistant', content: '', refusal: null })]),
  realChunk([delta(1, { role: 'assistant', content: null, refusal: null })]),
  realChunk([delta(0, { content: 'Hel' })]),
  realChunk([
    delta(1, {
      tool_calls: [
        { index: 0, id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '' } },
      ],
    }),
  ]),
  realChunk([delta(0, { content: 'lo, ' })]),
  realChunk([delta(1, { tool_calls: [{ index: 0, function: { arguments: '{"lo' } }] })]),
  realChunk([delta(1, { tool_calls: [{ index: 0, function: { arguments: 'cation": "Pa' } }] })]),
  realChunk([delta(0, { content: 'wörld 🎉' })]),
  realChunk([delta(1, { tool_calls: [{ index: 0, function: { arguments: 'ris"}' } }] })]),
  realChunk([
    delta(1, {
      tool_calls: [
        { index: 1, id: 'call_def', type: 'function', function: { name: 'get_time', arguments: '' } },
      ],
    }),
  ]),
  realChunk([delta(1, { tool_calls: [{ index: 1, function: { arguments: '{}' } }] })]),
  realChunk([delta(0, {}, 'stop')]),
  realChunk([delta(1, {}, 'tool_calls')]),
  {
    ...BASE,
    choices: [],
    usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 },
    obfuscation: 'x',
  },
  '[DONE]',
];

const REAL_ANSWER = {
  id: 'chatcmpl-Bx7real',
  object: 'chat.completion',
  created: 1_741_570_283,
  model: 'gpt-4o-2024-08-06',
  service_tier: 'default',
  system_fingerprint: 'fp_f5bdcc3276',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Hello, wörld 🎉', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
    {
      index: 1,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [
          {
            id: 'call_abc',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"location": "Paris"}' },
          },
          { id: 'call_def', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 },
};

describe('assembling an upstream stream', () => {
  it('builds the whole answer from an OpenAI-style stream (interleaved choices, split tool calls)', () => {
    for (const chunk of REAL_STREAM) if (chunk !== '[DONE]') expectChatCompletionChunk(chunk);
    const answer = assemble(sseBody(REAL_STREAM), 'chat.completions');
    expect(answer).toEqual(REAL_ANSWER);
    expectChatCompletion(answer);
    expect(JSON.stringify(answer)).not.toContain('obfuscation');
  });

  it('handles CRLF event separators and `data:` without a space', () => {
    const body = Buffer.from(
      REAL_STREAM.map((event) => `data:${event === '[DONE]' ? event : JSON.stringify(event)}\r\n\r\n`).join(
        '',
      ),
    );
    expect(assemble(body, 'chat.completions')).toEqual(REAL_ANSWER);
  });

  it('is not complete without [DONE]', () => {
    const result = assembler(sseBody(REAL_STREAM.slice(0, -1)), 'chat.completions');
    expect(result.complete).toBe(false);
    expect(result.answer()).toBeUndefined();
  });

  it('is not complete when a choice never got its finish reason', () => {
    const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm' };
    const result = assembler(
      sseBody([
        {
          ...base,
          choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }],
        },
        '[DONE]',
      ]),
      'chat.completions',
    );
    expect(result.complete).toBe(false);
    expect(result.answer()).toBeUndefined();
  });

  it('is never complete after an error event, even if [DONE] follows', () => {
    const error = {
      error: { message: 'The server had an error', type: 'server_error', param: null, code: null },
    };
    for (const events of [
      [...REAL_STREAM.slice(0, 4), error, '[DONE]' as const],
      [...REAL_STREAM.slice(0, -1), error, '[DONE]' as const],
      [error, ...REAL_STREAM],
    ]) {
      const result = assembler(sseBody(events), 'chat.completions');
      expect(result.complete).toBe(false);
      expect(result.answer()).toBeUndefined();
    }
  });

  it('is never complete after a named `event: error`', () => {
    const body = Buffer.concat([
      sseBody(REAL_STREAM.slice(0, 5)),
      Buffer.from('event: error\ndata: {"message":"overloaded"}\n\n'),
      sseBody(['[DONE]']),
    ]);
    const result = assembler(body, 'chat.completions');
    expect(result.complete).toBe(false);
    expect(result.answer()).toBeUndefined();
  });

  it('is not complete for a stream of only [DONE]', () => {
    const result = assembler(sseBody(['[DONE]']), 'chat.completions');
    expect(result.complete).toBe(false);
  });

  it('keeps the refusal and its logprobs', () => {
    const lp = tokenLogprob("I'm", -0.1);
    const events: Array<Json | '[DONE]'> = [
      realChunk([delta(0, { role: 'assistant', content: null, refusal: '' })]),
      realChunk([{ ...delta(0, { refusal: "I'm sorry" }), logprobs: { content: null, refusal: [lp] } }]),
      realChunk([{ ...delta(0, { refusal: '.' }), logprobs: { content: null, refusal: [lp] } }]),
      realChunk([delta(0, {}, 'stop')]),
      '[DONE]',
    ];
    const answer = assemble(sseBody(events), 'chat.completions');
    expect(answer?.choices).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: null, refusal: "I'm sorry." },
        logprobs: { content: null, refusal: [lp, lp] },
        finish_reason: 'stop',
      },
    ]);
    expectChatCompletion(answer);
  });

  it('builds a legacy completion from its stream', () => {
    const base = {
      id: 'cmpl-abc',
      object: 'text_completion',
      created: 1_589_478_378,
      model: 'gpt-3.5-turbo-instruct',
    };
    const events: Array<Json | '[DONE]'> = [
      { ...base, choices: [{ index: 1, text: 'B1', logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, text: 'A1', logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, text: ' A2', logprobs: null, finish_reason: 'stop' }] },
      { ...base, choices: [{ index: 1, text: '', logprobs: null, finish_reason: 'length' }] },
      { ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } },
      '[DONE]',
    ];
    for (const event of events) if (event !== '[DONE]') expectCompletionChunk(event);
    const answer = assemble(sseBody(events), 'completions');
    expect(answer).toEqual({
      ...base,
      choices: [
        { index: 0, text: 'A1 A2', logprobs: null, finish_reason: 'stop' },
        { index: 1, text: 'B1', logprobs: null, finish_reason: 'length' },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
    });
    expectCompletion(answer);
  });
});

// ---------------------------------------------------------------------------------------------------
// The official SDK reads replays

describe('the openai SDK accepts replays', () => {
  let server: Server;
  let client: OpenAI;
  let next: { answer: Json; endpoint: CacheStreamEndpoint } = { answer: {}, endpoint: 'chat.completions' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (part: Buffer) => parts.push(part));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Json;
        if (body.stream !== true) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(replayAsJson(next.answer));
          return;
        }
        const options = body.stream_options as { include_usage?: boolean } | undefined;
        const bytes = replayAsStream(next.answer, next.endpoint, {
          includeUsage: options?.include_usage === true,
        });
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.end(bytes);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0 });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const SDK_CASES = [
    'plain',
    'unicode',
    'tool calls',
    'content and a tool call',
    'refusal',
    'n=3',
    'logprobs',
  ];

  for (const name of SDK_CASES) {
    it(`rebuilds "${name}" from the raw deltas of chat.completions.create({ stream: true })`, async () => {
      const answer = CHAT_ANSWERS[name] ?? {};
      next = { answer, endpoint: 'chat.completions' };
      const stream = await client.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const rebuilt = new Map<number, { content: string; refusal: string; tools: Map<number, Json> }>();
      let usage: unknown;
      const finish = new Map<number, string>();
      for await (const chunk of stream) {
        expect(chunk.id).toBe(answer.id);
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          const state = rebuilt.get(c.index) ?? { content: '', refusal: '', tools: new Map() };
          rebuilt.set(c.index, state);
          state.content += c.delta.content ?? '';
          state.refusal += c.delta.refusal ?? '';
          for (const call of c.delta.tool_calls ?? []) {
            const tool = state.tools.get(call.index) ?? { id: '', name: '', arguments: '' };
            state.tools.set(call.index, tool);
            if (call.id) tool.id = call.id;
            tool.name = `${tool.name}${call.function?.name ?? ''}`;
            tool.arguments = `${tool.arguments}${call.function?.arguments ?? ''}`;
          }
          if (c.finish_reason) finish.set(c.index, c.finish_reason);
        }
      }
      expect(usage).toEqual(answer.usage);
      const choices = answer.choices as Array<{
        index: number;
        finish_reason: string;
        message: { content: string | null; refusal: string | null; tool_calls?: typeof TOOL_CALLS };
      }>;
      expect(rebuilt.size).toBe(choices.length);
      for (const expected of choices) {
        const state = rebuilt.get(expected.index);
        expect(state?.content).toBe(expected.message.content ?? '');
        expect(state?.refusal).toBe(expected.message.refusal ?? '');
        expect([...(state?.tools.values() ?? [])]).toEqual(
          (expected.message.tool_calls ?? []).map((t) => ({ id: t.id, ...t.function })),
        );
        expect(finish.get(expected.index)).toBe(expected.finish_reason);
      }
    });
  }

  for (const name of SDK_CASES) {
    for (const includeUsage of [true, false]) {
      it(`finalChatCompletion() of chat.completions.stream() equals "${name}" (includeUsage: ${includeUsage})`, async () => {
        const answer = CHAT_ANSWERS[name] ?? {};
        const choices = answer.choices as unknown[];
        next = { answer, endpoint: 'chat.completions' };
        const stream = client.chat.completions.stream({
          model: 'gpt-4o',
          messages: [{ role: 'user', content: 'hi' }],
          n: choices.length,
          stream_options: { include_usage: includeUsage },
        });
        const final = await stream.finalChatCompletion();
        const expected = normalised(includeUsage ? answer : withoutUsage(answer));
        expect(final).toMatchObject(expected);
        expect(final.usage).toEqual(includeUsage ? USAGE : undefined);
        expect(final.choices.map((c) => c.message.tool_calls ?? [])).toEqual(
          choices.map((c) => (c as { message: { tool_calls?: unknown[] } }).message.tool_calls ?? []),
        );
      });
    }
  }

  it('reads replayAsJson as a normal chat completion', async () => {
    const answer = CHAT_ANSWERS['tool calls'] ?? {};
    next = { answer, endpoint: 'chat.completions' };
    const completion = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion).toEqual(answer);
  });

  for (const [name, answer] of Object.entries(LEGACY_ANSWERS)) {
    it(`rebuilds legacy "${name}" from completions.create({ stream: true })`, async () => {
      next = { answer, endpoint: 'completions' };
      const stream = await client.completions.create({
        model: 'gpt-3.5-turbo-instruct',
        prompt: 'Say this is a test',
        stream: true,
        stream_options: { include_usage: true },
      });
      const text = new Map<number, string>();
      const finish = new Map<number, string>();
      let usage: unknown;
      for await (const chunk of stream) {
        expect(chunk.object).toBe('text_completion');
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          text.set(c.index, (text.get(c.index) ?? '') + c.text);
          if (c.finish_reason) finish.set(c.index, c.finish_reason);
        }
      }
      const choices = answer.choices as Array<{ index: number; text: string; finish_reason: string }>;
      expect(Object.fromEntries(text)).toEqual(Object.fromEntries(choices.map((c) => [c.index, c.text])));
      expect(Object.fromEntries(finish)).toEqual(
        Object.fromEntries(choices.map((c) => [c.index, c.finish_reason])),
      );
      expect(usage).toEqual(answer.usage);
    });
  }
});
