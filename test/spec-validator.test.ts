import { beforeAll, describe, expect, it } from 'vitest';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectEmbeddingResponse,
  expectErrorResponse,
  expectImagesResponse,
  expectModel,
  expectModelList,
  expectModerationResponse,
  expectResponse,
  expectResponseStreamEvent,
  validateSchema,
} from './support/spec-validator.js';

// Fixtures mirror real api.openai.com bodies (shape and field presence as the API returns them).

function chatCompletion(): Record<string, unknown> {
  return {
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: 'Hello! How can I assist you today?',
          refusal: null,
          annotations: [],
        },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: {
      prompt_tokens: 19,
      completion_tokens: 10,
      total_tokens: 29,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_06737a9306',
  };
}

function chunk(
  delta: Record<string, unknown>,
  finishReason: string | null,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion.chunk',
    created: 1741569952,
    model: 'gpt-4o-mini-2024-07-18',
    service_tier: 'default',
    system_fingerprint: 'fp_06737a9306',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...extra,
  };
}

function model(id: string, created: number, ownedBy = 'system'): Record<string, unknown> {
  return { id, object: 'model', created, owned_by: ownedBy };
}

function base64Floats(values: readonly number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64');
}

const MODERATION_CATEGORIES = [
  'harassment',
  'harassment/threatening',
  'hate',
  'hate/threatening',
  'illicit',
  'illicit/violent',
  'self-harm',
  'self-harm/intent',
  'self-harm/instructions',
  'sexual',
  'sexual/minors',
  'violence',
  'violence/graphic',
] as const;

function response(): Record<string, unknown> {
  return {
    id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
    object: 'response',
    created_at: 1741476542,
    status: 'completed',
    background: false,
    completed_at: 1741476543,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    max_tool_calls: null,
    model: 'gpt-4.1-2025-04-14',
    output: [
      {
        type: 'message',
        id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b',
        status: 'completed',
        role: 'assistant',
        content: [
          {
            type: 'output_text',
            text: 'In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool.',
            annotations: [],
            logprobs: [],
          },
        ],
      },
    ],
    parallel_tool_calls: true,
    previous_response_id: null,
    prompt_cache_key: null,
    reasoning: { effort: null, summary: null },
    safety_identifier: null,
    service_tier: 'default',
    store: true,
    temperature: 1,
    text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: 'auto',
    tools: [],
    top_logprobs: 0,
    top_p: 1,
    truncation: 'disabled',
    usage: {
      input_tokens: 36,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: 87,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 123,
    },
    user: null,
    metadata: {},
  };
}

/** Runs `fn`, which must throw, and returns the thrown Error's message. */
function thrownMessage(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return (error as Error).message;
  }
  throw new Error('expected the validator to throw, but it accepted the value');
}

beforeAll(() => {
  // First use parses the 3 MB spec (or reads its cached JSON); keep that out of per-test timeouts.
  expectModel(model('gpt-4o-mini', 1721172741));
}, 60_000);

describe('chat completions', () => {
  it('accepts a realistic chat completion', () => {
    expect(() => expectChatCompletion(chatCompletion())).not.toThrow();
  });

  it('accepts a tool-call completion with null content', () => {
    const body = chatCompletion();
    body.choices = [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          refusal: null,
          annotations: [],
          tool_calls: [
            {
              id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"location":"Paris, France"}' },
            },
          ],
        },
        logprobs: null,
        finish_reason: 'tool_calls',
      },
    ];
    expect(() => expectChatCompletion(body)).not.toThrow();
  });

  it('explains a tool call with an unknown type in one line', () => {
    const body = chatCompletion();
    const toolCall = { id: 'call_1', type: 'functionn', function: { name: 'f', arguments: '{}' } };
    body.choices = [
      {
        index: 0,
        message: { role: 'assistant', content: null, refusal: null, tool_calls: [toolCall] },
        logprobs: null,
        finish_reason: 'tool_calls',
      },
    ];
    const message = thrownMessage(() => expectChatCompletion(body));
    expect(message).toContain(
      '/choices/0/message/tool_calls/0 matches no branch of the oneOf: type "functionn" is not one of ["function","custom"]',
    );
    expect(message).not.toContain("required property 'custom'");
  });

  it('accepts system_fingerprint: null (documented spec patch)', () => {
    expect(() => expectChatCompletion({ ...chatCompletion(), system_fingerprint: null })).not.toThrow();
    expect(() =>
      expectChatCompletionChunk(chunk({ content: 'x' }, null, { system_fingerprint: null })),
    ).not.toThrow();
  });

  it('rejects a completion without choices, naming the missing property', () => {
    const { choices: _omitted, ...body } = chatCompletion();
    const message = thrownMessage(() => expectChatCompletion(body));
    expect(message).toContain('#/components/schemas/CreateChatCompletionResponse');
    expect(message).toContain("(root) must have required property 'choices'");
    expect(message).toContain('"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"');
  });

  it('rejects a bad finish_reason with its instance path', () => {
    const body = chatCompletion();
    body.choices = [
      {
        index: 0,
        message: { role: 'assistant', content: 'hi', refusal: null },
        logprobs: null,
        finish_reason: 'done',
      },
    ];
    const message = thrownMessage(() => expectChatCompletion(body));
    expect(message).toMatch(/\/choices\/0\/finish_reason must be equal to one of the allowed values.*"done"/);
  });

  it('rejects a non-string id and a wrong object', () => {
    expect(() => expectChatCompletion({ ...chatCompletion(), id: 42 })).toThrow(/\/id must be string/);
    expect(() => expectChatCompletion({ ...chatCompletion(), object: 'chat.completion.chunk' })).toThrow(
      /\/object/,
    );
  });
});

describe('chat completion chunks', () => {
  it('accepts every chunk of a realistic stream, including the include_usage chunk', () => {
    const stream = [
      chunk({ role: 'assistant', content: '', refusal: null }, null, {
        usage: null,
        obfuscation: 'r4N7vQ2m',
      }),
      chunk({ content: 'Hello' }, null, { usage: null, obfuscation: 'p9K3xT6w' }),
      chunk({}, 'stop', { usage: null }),
      {
        ...chunk({}, null),
        choices: [],
        usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 },
      },
    ];
    for (const item of stream) expect(() => expectChatCompletionChunk(item)).not.toThrow();
  });

  it('accepts streamed tool-call deltas', () => {
    const delta = {
      tool_calls: [
        { index: 0, id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '' } },
      ],
    };
    expect(() => expectChatCompletionChunk(chunk(delta, null))).not.toThrow();
    expect(() =>
      expectChatCompletionChunk(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"lo' } }] }, null)),
    ).not.toThrow();
  });

  it('rejects a chunk with object: "wrong"', () => {
    const message = thrownMessage(() =>
      expectChatCompletionChunk({ ...chunk({ content: 'x' }, null), object: 'wrong' }),
    );
    expect(message).toMatch(/\/object must be equal to one of the allowed values.*chat\.completion\.chunk/);
    expect(message).toContain('(got "wrong")');
  });

  it('rejects a chunk whose choice lacks finish_reason', () => {
    const body = chunk({ content: 'x' }, null);
    body.choices = [{ index: 0, delta: { content: 'x' } }];
    expect(() => expectChatCompletionChunk(body)).toThrow(
      /\/choices\/0 must have required property 'finish_reason'/,
    );
  });

  it('rejects a full chat completion passed as a chunk', () => {
    expect(() => expectChatCompletionChunk(chatCompletion())).toThrow(
      /\/choices\/0 must have required property 'delta'/,
    );
  });
});

describe('embeddings', () => {
  const floats = [0.0023064255, -0.009327292, 0.015797347, -0.0077780345];

  it('accepts float arrays', () => {
    const body = {
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: floats },
        { object: 'embedding', index: 1, embedding: floats.map((x) => -x) },
      ],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 8, total_tokens: 8 },
    };
    expect(() => expectEmbeddingResponse(body)).not.toThrow();
  });

  it('accepts base64 strings (encoding_format: "base64")', () => {
    const encoded = base64Floats(floats);
    expect(encoded).toMatch(/=$/); // 16 bytes -> padded base64, exercises the padding branch
    const body = {
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: encoded },
        { object: 'embedding', index: 1, embedding: base64Floats([1, 2, 3]) },
      ],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 8, total_tokens: 8 },
    };
    expect(() => expectEmbeddingResponse(body)).not.toThrow();
  });

  it('rejects non-base64 strings, non-numeric vectors and missing usage', () => {
    const body = (embedding: unknown) => ({
      object: 'list',
      data: [{ object: 'embedding', index: 0, embedding }],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 1, total_tokens: 1 },
    });
    expect(() => expectEmbeddingResponse(body('not base64!'))).toThrow(/\/data\/0\/embedding/);
    expect(() => expectEmbeddingResponse(body(['0.1', '0.2']))).toThrow(
      /\/data\/0\/embedding\/0 must be number/,
    );
    const { usage: _omitted, ...noUsage } = body(floats);
    expect(() => expectEmbeddingResponse(noUsage)).toThrow(/must have required property 'usage'/);
    expect(() => expectEmbeddingResponse(body(base64Floats(floats).slice(1)))).toThrow(
      /\/data\/0\/embedding/,
    );
  });
});

describe('models', () => {
  const list = {
    object: 'list',
    data: [
      model('gpt-4o-mini', 1721172741),
      model('text-embedding-3-small', 1705948997),
      model('ft:gpt-4o-mini-2024-07-18:acme::9fZk3Lzq', 1722000000, 'user-abc123'),
    ],
  };

  it('accepts a model list and a single model', () => {
    expect(() => expectModelList(list)).not.toThrow();
    expect(() => expectModel(model('gpt-4o-mini', 1721172741))).not.toThrow();
  });

  it('rejects a model with a non-integer created', () => {
    expect(() => expectModel(model('gpt-4o-mini', 1721172741.5))).toThrow(/\/created must be integer/);
    expect(() => expectModel(model('gpt-4o-mini', Number.NaN))).toThrow(/\/created/);
    expect(() => expectModelList({ ...list, data: [model('x', 12.5)] })).toThrow(
      /\/data\/0\/created must be integer/,
    );
  });

  it('rejects millisecond timestamps (unixtime format is seconds)', () => {
    expect(() => expectModel(model('gpt-4o-mini', 1721172741000))).toThrow(
      /\/created must match format "unixtime"/,
    );
  });

  it('rejects a list without data and a model without owned_by', () => {
    expect(() => expectModelList({ object: 'list' })).toThrow(/must have required property 'data'/);
    expect(() => expectModel({ id: 'x', object: 'model', created: 1 })).toThrow(
      /must have required property 'owned_by'/,
    );
  });
});

describe('errors', () => {
  it('accepts the standard error envelope', () => {
    const body = { error: { message: 'x', type: 'invalid_request_error', param: null, code: null } };
    expect(() => expectErrorResponse(body)).not.toThrow();
    expect(() =>
      expectErrorResponse({
        error: {
          message: 'Incorrect API key provided: sk-abc***.',
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      }),
    ).not.toThrow();
  });

  it('rejects envelopes that omit param/code or are not wrapped in "error"', () => {
    expect(() => expectErrorResponse({ error: { message: 'x', type: 'invalid_request_error' } })).toThrow(
      /\/error must have required property 'param'/,
    );
    expect(() =>
      expectErrorResponse({ message: 'x', type: 'invalid_request_error', param: null, code: null }),
    ).toThrow(/must have required property 'error'/);
    expect(() =>
      expectErrorResponse({ error: { message: 'x', type: 'server_error', param: null, code: 500 } }),
    ).toThrow(/\/error\/code/);
  });
});

describe('legacy completions', () => {
  const body = {
    id: 'cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7',
    object: 'text_completion',
    created: 1589478378,
    model: 'gpt-3.5-turbo-instruct',
    system_fingerprint: 'fp_44709d6fcb',
    choices: [{ text: '\n\nThis is indeed a test', index: 0, logprobs: null, finish_reason: 'length' }],
    usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
  };

  it('accepts a completion and rejects a chat-shaped one', () => {
    expect(() => expectCompletion(body)).not.toThrow();
    expect(() => expectCompletion(chatCompletion())).toThrow(
      /\/choices\/0 must have required property 'text'/,
    );
  });
});

describe('moderations', () => {
  const result = {
    flagged: false,
    categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, false])),
    category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, 0.0001])),
    category_applied_input_types: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, ['text']])),
  };
  const body = {
    id: 'modr-970d409ef3bef3b70c73d8232df86e7d',
    model: 'omni-moderation-latest',
    results: [result],
  };

  it('accepts an omni-moderation result and rejects one with a missing category', () => {
    expect(() => expectModerationResponse(body)).not.toThrow();
    const { hate: _omitted, ...categories } = result.categories;
    expect(() => expectModerationResponse({ ...body, results: [{ ...result, categories }] })).toThrow(
      /\/results\/0\/categories must have required property 'hate'/,
    );
  });
});

describe('images', () => {
  it('accepts gpt-image (b64_json + usage) and dall-e-3 (url + revised_prompt) bodies', () => {
    expect(() =>
      expectImagesResponse({
        created: 1713833628,
        background: 'opaque',
        output_format: 'png',
        quality: 'high',
        size: '1024x1024',
        data: [{ b64_json: base64Floats([1, 2, 3, 4]) }],
        usage: {
          total_tokens: 100,
          input_tokens: 50,
          output_tokens: 50,
          input_tokens_details: { text_tokens: 10, image_tokens: 40 },
        },
      }),
    ).not.toThrow();
    expect(() =>
      expectImagesResponse({
        created: 1713833628,
        data: [
          {
            url: 'https://oaidalleapiprodscus.blob.core.windows.net/private/img.png?sig=abc',
            revised_prompt: 'A cat',
          },
        ],
      }),
    ).not.toThrow();
  });

  it('rejects a body without created and a non-URI url', () => {
    expect(() => expectImagesResponse({ data: [] })).toThrow(/must have required property 'created'/);
    expect(() => expectImagesResponse({ created: 1713833628, data: [{ url: 'not a uri' }] })).toThrow(
      /\/data\/0\/url must match format "uri"/,
    );
  });
});

describe('responses API', () => {
  it('accepts a realistic response object (with user: null, documented spec patch)', () => {
    expect(() => expectResponse(response())).not.toThrow();
  });

  it('rejects a response without output and one with an unknown status', () => {
    const { output: _omitted, ...noOutput } = response();
    expect(() => expectResponse(noOutput)).toThrow(/must have required property 'output'/);
    expect(() => expectResponse({ ...response(), status: 'done' })).toThrow(
      /\/status must be equal to one of/,
    );
  });

  it('accepts realistic stream events and rejects malformed ones', () => {
    const inProgress = { ...response(), status: 'in_progress', completed_at: null, output: [], usage: null };
    const events = [
      { type: 'response.created', sequence_number: 0, response: inProgress },
      {
        type: 'response.output_text.delta',
        item_id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b',
        output_index: 0,
        content_index: 0,
        delta: 'In',
        logprobs: [],
        sequence_number: 4,
      },
      { type: 'response.completed', sequence_number: 20, response: response() },
    ];
    for (const event of events) expect(() => expectResponseStreamEvent(event)).not.toThrow();

    const { sequence_number: _omitted, ...noSequence } = events[1] ?? {};
    const missing = thrownMessage(() => expectResponseStreamEvent(noSequence));
    expect(missing).toContain("(root) must have required property 'sequence_number'");
    // Branches whose `type` discriminator does not match are left out of the report.
    expect(missing).not.toContain('response.audio.delta');
    expect(missing.split('\n').length).toBeLessThan(6);

    const unknownType = thrownMessage(() =>
      expectResponseStreamEvent({ type: 'response.nonsense', sequence_number: 1 }),
    );
    expect(unknownType).toMatch(
      /\(root\) matches no branch of the anyOf: type "response\.nonsense" is not one of \[/,
    );
    expect(unknownType).toContain('"response.output_text.delta"');
  });

  it('accepts an in-progress response with usage: null (documented spec patch) but not a bad usage', () => {
    const inProgress = { ...response(), status: 'in_progress', completed_at: null, output: [], usage: null };
    expect(() => expectResponse(inProgress)).not.toThrow();
    expect(() => expectResponse({ ...response(), usage: { input_tokens: 1 } })).toThrow(
      /\/usage must have required property 'output_tokens'/,
    );
  });
});

describe('validateSchema', () => {
  it('validates any component schema by name', () => {
    expect(() =>
      validateSchema('CompletionUsage', { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }),
    ).not.toThrow();
    expect(() => validateSchema('CompletionUsage', { prompt_tokens: 1 })).toThrow(/CompletionUsage/);
  });

  it('throws for unknown schema names instead of passing silently', () => {
    expect(() => validateSchema('NoSuchSchema', {})).toThrow(
      /no schema #\/components\/schemas\/NoSuchSchema/,
    );
  });

  it('rejects non-object values with a readable excerpt', () => {
    expect(() => expectChatCompletion(undefined)).toThrow(/\(root\) must be object[\s\S]*Value: undefined/);
    expect(() => expectChatCompletion('<html>502 Bad Gateway</html>')).toThrow(
      /Value: "<html>502 Bad Gateway<\/html>"/,
    );
  });

  it('truncates the value excerpt for large bodies', () => {
    const body = { ...chatCompletion(), choices: undefined, padding: 'x'.repeat(10_000) };
    const message = thrownMessage(() => expectChatCompletion(body));
    expect(message.length).toBeLessThan(2_000);
    expect(message).toMatch(/… \(\d+ chars\)$/);
  });
});
