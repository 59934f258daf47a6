import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { translateRequest } from '../src/backends/responses-translation/request-translation.js';
import { responsesErrorOf } from '../src/backends/responses-translation/translated-errors.js';
import { BackendBusyError } from '../src/errors.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream, openaiError, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectErrorResponse } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/**
 * Errors the chat side raises for a translated `/v1/responses` request name the Responses
 * request's parameters, in `param` and in the message, not the chat request's the client never
 * sent: on the in-process model, on an OpenAI-compatible chat upstream (its 400 body, and an
 * error as its stream's first event).
 */
type Json = Record<string, unknown>;

const IMAGE = 'data:image/png;base64,iVBORw0KGgo=';

/** Three earlier turns and instructions, so that chat's message indexes differ from `input`'s. */
const CONVERSATION: { instructions: string; input: OpenAI.Responses.ResponseInput } = {
  instructions: 'Be brief.',
  input: [
    { role: 'user', content: 'first' },
    { type: 'message', role: 'assistant', content: 'ok' },
    {
      role: 'user',
      content: [
        { type: 'input_text', text: 'what is this?' },
        { type: 'input_image', image_url: IMAGE, detail: 'auto' },
      ],
    },
  ],
};

/** What the SDK threw for a request (it must throw). */
async function failure(request: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await request;
  } catch (error) {
    expect(error).toBeInstanceOf(OpenAI.APIError);
    return error as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error('the request succeeded');
}

describe('the in-process model', () => {
  let gw: TinyModelGateway;
  let client: OpenAI;

  beforeAll(async () => {
    gw = await startTinyModelGateway({ backend: { model: writeTinyGguf(), contextSize: 1024 } });
    await gw.backend.loaded;
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it.each([false, true])(
    'max_output_tokens past the context (stream %s): param and message say max_output_tokens',
    async (stream) => {
      const error = await failure(
        client.responses.create({ model: 'tiny', input: 'x', max_output_tokens: 5000, stream }),
      );
      expect(error.status).toBe(400);
      expectErrorResponse({ error: error.error });
      expect(error).toMatchObject({ param: 'max_output_tokens', code: 'context_length_exceeded' });
      expect(error.message).toContain('lower max_output_tokens.');
      expect(error.message).not.toContain('max_tokens');
    },
  );

  it('a prompt past the context: param input', async () => {
    const error = await failure(
      client.responses.create({ model: 'tiny', input: 'hello world '.repeat(2000) }),
    );
    expect(error).toMatchObject({ status: 400, param: 'input', code: 'context_length_exceeded' });
    expect(error.message).not.toMatch(/max_tokens|messages/);
  });

  it('an input_image it cannot read: the input item and part type the client sent', async () => {
    const response = await fetch(`${gw.baseURL}/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', ...CONVERSATION }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: Json };
    expectErrorResponse(body);
    expect(body.error).toEqual({
      message: "input[2].content: in-process models take text only (got an 'input_image' part).",
      type: 'invalid_request_error',
      param: 'input[2].content',
      code: null,
    });
  });
});

describe('an OpenAI-compatible chat upstream', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    // Refuses as OpenAI's chat completions does, naming the chat request's paths.
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
      const body = request.json ?? {};
      const said = JSON.stringify(body.messages);
      if (said.includes('bad-arguments'))
        return sendJson(
          res,
          400,
          openaiError(
            "Invalid 'messages[2].tool_calls[1].function.arguments': expected JSON.",
            'invalid_request_error',
            'invalid_value',
            'messages[2].tool_calls[1].function.arguments',
          ),
        );
      if (said.includes('too-long') && body.stream === true)
        return sendSse(
          res,
          [
            {
              error: {
                message: "The 'messages' are longer than the context window.",
                type: 'invalid_request_error',
                param: 'messages',
                code: 'context_length_exceeded',
              },
            },
          ],
          { done: false },
        );
      return sendJson(
        res,
        400,
        openaiError(
          "Invalid 'messages[3].content[1].image_url.url': this model cannot read content of type 'image_url'.",
          'invalid_request_error',
          'invalid_value',
          'messages[3].content[1].image_url.url',
        ),
      );
    });
    const url = await upstream.start();
    gw = await startGateway(
      { backends: { local: { type: 'mock' } }, models: { 'local-model': { backend: 'local' } } },
      {},
      { registry: new BackendRegistry([chatOnlyUpstream('local', url)]) },
    );
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  it("its 400 body: param and quoted paths in the request's names", async () => {
    for (const stream of [false, true]) {
      const error = await failure(client.responses.create({ model: 'local-model', ...CONVERSATION, stream }));
      expect(error.status).toBe(400);
      expect(error.error).toEqual({
        message:
          "Invalid 'input[2].content[1].image_url': this model cannot read content of type 'input_image'.",
        type: 'invalid_request_error',
        param: 'input[2].content[1].image_url',
        code: 'invalid_value',
      });
    }
  });

  it('a function call merged into an assistant turn: the function_call item it came from', async () => {
    const error = await failure(
      client.responses.create({
        model: 'local-model',
        input: [
          { role: 'user', content: 'bad-arguments' },
          { type: 'reasoning', id: 'rs_1', summary: [] },
          { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
          { type: 'function_call', call_id: 'c2', name: 'f', arguments: '{' },
          { type: 'function_call_output', call_id: 'c1', output: '1' },
          { type: 'function_call_output', call_id: 'c2', output: '2' },
        ],
        instructions: 'Be brief.',
      }),
    );
    expect(error).toMatchObject({ status: 400, param: 'input[3].arguments' });
    expect(error.error).toMatchObject({ message: "Invalid 'input[3].arguments': expected JSON." });
  });

  it("an error as the chat stream's first event: the gateway's 400 names the input", async () => {
    const error = await failure(
      client.responses.create({ model: 'local-model', input: 'too-long', stream: true }),
    );
    expect(error.error).toEqual({
      message: "The 'input' are longer than the context window.",
      type: 'context_length_exceeded',
      param: 'input',
      code: 'context_length_exceeded',
    });
  });
});

describe('the mapping of chat paths to the Responses request', () => {
  const request = {
    model: 'm',
    instructions: [{ role: 'developer', content: 'Be brief.' }],
    input: [
      {
        role: 'user',
        content: [
          { type: 'input_text', text: 'hi' },
          { type: 'input_file', file_data: 'x' },
        ],
      },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'calling' }] },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c1', output: [{ type: 'input_text', text: '1' }] },
    ],
    tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
    tool_choice: { type: 'function', name: 'f' },
    text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object' } }, verbosity: 'low' },
    reasoning: { effort: 'low' },
    max_output_tokens: 10,
  };
  const { paths } = translateRequest(request, 'm', true);

  it.each([
    ['messages', 'input'],
    ['messages[0].content', 'instructions[0].content'],
    ['messages[1].content[1].file.file_data', 'input[0].content[1].file_data'],
    ['messages[1].content[0].text', 'input[0].content[0].text'],
    ['messages[1].role', 'input[0].role'],
    ['messages[2]', 'input[1]'],
    ['messages[2].refusal', 'input[1].content'],
    ['messages[2].tool_calls[0]', 'input[2]'],
    ['messages[2].tool_calls[0].id', 'input[2].call_id'],
    ['messages[2].tool_calls[0].function.name', 'input[2].name'],
    ['messages[3].content', 'input[3].output'],
    ['messages[3].tool_call_id', 'input[3].call_id'],
    ['messages[9].content', 'input'],
    ['max_tokens', 'max_output_tokens'],
    ['max_completion_tokens', 'max_output_tokens'],
    ['tools[0].function.parameters', 'tools[0].parameters'],
    ['tools[0].function', 'tools[0]'],
    ['tool_choice.function.name', 'tool_choice.name'],
    ['response_format.json_schema.schema', 'text.format.schema'],
    ['response_format', 'text.format'],
    ['reasoning_effort', 'reasoning.effort'],
    ['verbosity', 'text.verbosity'],
    ['stream_options.include_usage', 'stream'],
    ['temperature', 'temperature'],
  ])('%s is %s', (chat, responses) => {
    expect(paths.param(chat)).toBe(responses);
  });

  it('names in prose stay: only quoted or indexed chat names are renamed', () => {
    expect(paths.text('Too many messages; shorten messages[1].content[0].text.')).toBe(
      'Too many messages; shorten input[0].content[0].text.',
    );
    expect(paths.text("'response_format.json_schema.schema' cannot be turned into a grammar")).toBe(
      "'text.format.schema' cannot be turned into a grammar",
    );
  });
});

describe('a renamed error keeps its class', () => {
  it('a busy backend’s 429 quoting a chat name is still a BackendBusyError (routing retries it elsewhere)', () => {
    const { paths } = translateRequest({ model: 'm', input: 'x', max_output_tokens: 5 }, 'm', true);
    const busy = new BackendBusyError('Busy: lower max_tokens or come back later.');
    const renamed = responsesErrorOf(busy, paths);
    expect(renamed).toBeInstanceOf(BackendBusyError);
    expect((renamed as BackendBusyError).message).toBe('Busy: lower max_output_tokens or come back later.');
    expect((renamed as BackendBusyError).headers['retry-after']).toBe('1');
    expect((renamed as BackendBusyError).status).toBe(429);
  });
});
