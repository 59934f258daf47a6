import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectErrorResponse } from './support/spec-validator.js';

/**
 * A chat upstream that answers a translated `/v1/responses` request with a 200 whose body is an
 * error object and nothing else (some OpenAI-compatible servers and proxies do): the client gets
 * that error's own status and body, as `/v1/chat/completions` gives it for the same answer, not a
 * 502 saying the answer had no choice. Its parameter names are the Responses request's.
 */

/** The upstream's 200 body, by the word the prompt carries. */
const ANSWERS: Record<string, Record<string, unknown>> = {
  'bad-param': {
    error: {
      message: "Invalid 'max_tokens': integer above maximum value.",
      type: 'invalid_request_error',
      param: 'max_tokens',
      code: 'integer_above_max_value',
    },
  },
  'no-model': {
    error: {
      message: 'The model does not exist.',
      type: 'invalid_request_error',
      param: null,
      code: 'model_not_found',
    },
  },
  // TGI's: a bare message, its kind beside it.
  tgi: {
    error: 'Input validation error: `inputs` must have less than 2048 tokens.',
    error_type: 'validation',
  },
  overloaded: {
    error: { message: 'The engine is currently overloaded.', type: 'server_error', code: 'overloaded' },
  },
  broken: { error: { message: 'CUDA out of memory.', type: 'server_error', param: null, code: null } },
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

describe('a translated chat upstream answering 200 with only an error object', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) => {
      const said = JSON.stringify(request.json?.messages ?? '');
      const word = Object.keys(ANSWERS).find((key) => said.includes(key)) ?? 'broken';
      sendJson(res, 200, ANSWERS[word]);
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

  it.each(Object.keys(ANSWERS).flatMap((word) => [false, true].map((stream) => [word, stream] as const)))(
    '%s (stream %s): the status and error chat completions gives',
    async (word, stream) => {
      const chat = await failure(
        client.chat.completions.create({
          model: 'local-model',
          messages: [{ role: 'user', content: word }],
          stream,
        }),
      );
      const responses = await failure(client.responses.create({ model: 'local-model', input: word, stream }));
      expect(responses.status).toBe(chat.status);
      expectErrorResponse({ error: responses.error });
      if (word === 'bad-param') {
        // The client sent max_output_tokens, never max_tokens.
        expect(chat.status).toBe(400);
        expect(responses.error).toEqual({
          message: "Invalid 'max_output_tokens': integer above maximum value.",
          type: 'invalid_request_error',
          param: 'max_output_tokens',
          code: 'integer_above_max_value',
        });
      } else {
        expect(responses.error).toEqual(chat.error);
      }
    },
  );

  it("the statuses are the errors' own: 400, 404, 400, 503, 502", async () => {
    const statuses: number[] = [];
    for (const word of Object.keys(ANSWERS))
      statuses.push(
        (await failure(client.responses.create({ model: 'local-model', input: word }))).status ?? 0,
      );
    expect(statuses).toEqual([400, 404, 400, 503, 502]);
  });
});
