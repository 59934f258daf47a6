import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * An OpenAI-compatible upstream that answers a translated `/v1/messages` request with a 200 whose
 * body is an error object and nothing else (some servers and proxies do): the Anthropic client
 * gets that error's own status, in Anthropic's envelope with the type for that status, as
 * `/v1/chat/completions` gives the same answer in OpenAI's, not a 502 saying the answer failed.
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
  limited: {
    error: { message: 'Rate limit reached for requests.', type: 'requests', code: 'rate_limit_exceeded' },
  },
  overloaded: {
    error: { message: 'The engine is currently overloaded.', type: 'server_error', code: 'overloaded' },
  },
  broken: { error: { message: 'CUDA out of memory.', type: 'server_error', param: null, code: null } },
};

/** Anthropic's status and error type for each, and the message the client reads. */
const EXPECTED: Record<string, { status: number; type: string; message: string }> = {
  'bad-param': {
    status: 400,
    type: 'invalid_request_error',
    message: "Invalid 'max_tokens': integer above maximum value.",
  },
  'no-model': { status: 404, type: 'not_found_error', message: 'The model does not exist.' },
  tgi: {
    status: 400,
    type: 'invalid_request_error',
    message: 'Input validation error: `inputs` must have less than 2048 tokens.',
  },
  limited: { status: 429, type: 'rate_limit_error', message: 'Rate limit reached for requests.' },
  // Anthropic's own status for an overloaded upstream (chat says 503).
  overloaded: {
    status: 529,
    type: 'overloaded_error',
    message: 'The upstream answered 200, then said it is overloaded: The engine is currently overloaded.',
  },
  broken: {
    status: 502,
    type: 'api_error',
    message: 'The upstream answered 200 with an error: CUDA out of memory.',
  },
};

/** What the SDK threw for a request (it must throw). */
async function failure<E extends Error>(
  request: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
) {
  try {
    await request;
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error as E;
  }
  throw new Error('the request succeeded');
}

describe('a translated chat upstream answering 200 with only an error object, on /v1/messages', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let openai: OpenAI;
  let anthropic: Anthropic;

  beforeAll(async () => {
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) => {
      const said = JSON.stringify(request.json?.messages ?? '');
      const word = Object.keys(ANSWERS).find((key) => said.includes(key)) ?? 'broken';
      sendJson(res, 200, ANSWERS[word]);
    });
    const base = await upstream.start();
    gw = await startGateway({
      backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream-123456' } },
      models: { chat: { backend: 'up' } },
    });
    openai = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  it.each(Object.keys(ANSWERS).flatMap((word) => [false, true].map((stream) => [word, stream] as const)))(
    '%s (stream %s): the status chat completions gives, in Anthropic’s envelope',
    async (word, stream) => {
      const chat = await failure(
        openai.chat.completions.create({
          model: 'chat',
          messages: [{ role: 'user', content: word }],
          stream,
        }),
        OpenAI.APIError,
      );
      const messages = await failure(
        anthropic.messages.create({
          model: 'chat',
          max_tokens: 64,
          messages: [{ role: 'user', content: word }],
          stream,
        }),
        Anthropic.APIError,
      );
      const expected = EXPECTED[word];
      // The same failure: only an overloaded upstream has a status of Anthropic's own.
      expect(messages.status).toBe(word === 'overloaded' ? 529 : chat.status);
      expect(messages.status).toBe(expected?.status);
      expect(messages.error).toMatchObject({
        type: 'error',
        error: { type: expected?.type, message: expected?.message },
      });
    },
  );

  it('an error object that says nothing (no message, type or code) is still the upstream failing: 502', async () => {
    const mute = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) =>
      sendJson(res, 200, { error: {} }),
    );
    const base = await mute.start();
    const muted = await startGateway({
      backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream-123456' } },
      models: { chat: { backend: 'up' } },
    });
    try {
      const client = new Anthropic({ baseURL: muted.url, apiKey: 'unused', maxRetries: 0 });
      const error = await failure(
        client.messages.create({
          model: 'chat',
          max_tokens: 64,
          messages: [{ role: 'user', content: 'hi' }],
        }),
        Anthropic.APIError,
      );
      expect(error.status).toBe(502);
      expect(error.error).toMatchObject({
        type: 'error',
        error: {
          type: 'api_error',
          message: expect.stringContaining('The upstream answered 200 with an error.'),
        },
      });
    } finally {
      await muted.close();
      await mute.stop();
    }
  });
});
