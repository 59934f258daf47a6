import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_OUTPUT_TOKENS } from '../src/usage/token-estimate.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Validation answers say what is wrong, in OpenAI's words: a field that is present with the
 * wrong type is not "missing", a number out of range says the range and what was sent, and an
 * unknown role is refused with the supported ones listed.
 */

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } });
});

afterAll(async () => {
  await gw?.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

const user = { role: 'user', content: 'hi' };

const chatCases: Array<{
  name: string;
  body: Record<string, unknown>;
  param: string;
  message: string | RegExp;
}> = [
  {
    name: 'messages as a string',
    body: { model: 'mock', messages: 'hi' },
    param: 'messages',
    message: "Invalid type for 'messages': expected an array of messages, but got a string instead.",
  },
  {
    name: 'messages as null',
    body: { model: 'mock', messages: null },
    param: 'messages',
    message: "Invalid type for 'messages': expected an array of messages, but got null instead.",
  },
  {
    name: 'no messages',
    body: { model: 'mock' },
    param: 'messages',
    message: "Missing required parameter: 'messages'.",
  },
  {
    name: 'an empty messages array',
    body: { model: 'mock', messages: [] },
    param: 'messages',
    message:
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
  },
  {
    name: 'a message that is a string',
    body: { model: 'mock', messages: ['hi'] },
    param: 'messages[0]',
    message: "Invalid type for 'messages[0]': expected an object, but got a string instead.",
  },
  {
    name: 'stream as a string',
    body: { model: 'mock', messages: [user], stream: 'yes' },
    param: 'stream',
    message: "Invalid type for 'stream': expected a boolean, but got a string instead.",
  },
  {
    name: 'max_tokens below 1',
    body: { model: 'mock', messages: [user], max_tokens: -5 },
    param: 'max_tokens',
    message: "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -5 instead.",
  },
  {
    name: 'max_tokens as a decimal',
    body: { model: 'mock', messages: [user], max_tokens: 2.5 },
    param: 'max_tokens',
    message:
      /^Invalid type for 'max_tokens': expected an integer( from 1 to \d+)?, but got a decimal number instead\.$/,
  },
  {
    name: 'n above 128',
    body: { model: 'mock', messages: [user], n: 129 },
    param: 'n',
    message: "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 instead.",
  },
  {
    name: 'temperature above 2',
    body: { model: 'mock', messages: [user], temperature: 2.5 },
    param: 'temperature',
    message:
      "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
  },
  {
    name: "an unknown role 'usr'",
    body: { model: 'mock', messages: [{ role: 'usr', content: 'hi' }] },
    param: 'messages[0].role',
    message:
      "Invalid value for 'messages[0].role': 'usr'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
  },
  {
    name: 'a message without a role',
    body: { model: 'mock', messages: [user, { content: 'no role' }] },
    param: 'messages[1].role',
    message: "Missing required parameter: 'messages[1].role'.",
  },
  {
    name: 'a model that is a number',
    body: { model: 5, messages: [user] },
    param: 'model',
    message: "Invalid type for 'model': expected a string, but got an integer instead.",
  },
  {
    name: 'max_tokens too large to be an exact integer',
    body: { model: 'mock', messages: [user], max_tokens: 1e20 },
    param: 'max_tokens',
    message: `Invalid 'max_tokens': integer above maximum value. Expected a value <= ${MAX_OUTPUT_TOKENS}, but got 100000000000000000000 instead.`,
  },
];

describe('chat completions', () => {
  for (const { name, body, param, message } of chatCases) {
    it(`${name} -> 400 naming ${param}`, async () => {
      const response = await post('/chat/completions', body);
      expect(response.status).toBe(400);
      const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param });
      if (typeof message === 'string') expect(error.message).toBe(message);
      else expect(error.message).toMatch(message);
    });
  }

  it('every role OpenAI accepts passes, and unknown fields (on the body and the messages) pass through', async () => {
    const messages = ['system', 'developer', 'user', 'assistant', 'tool', 'function'].map((role) => ({
      role,
      content: `as ${role}`,
      x_vendor_note: { kept: true },
    }));
    const response = await post('/chat/completions', { model: 'mock', messages, x_vendor: [1, 'two'] });
    expect(response.status).toBe(200);
  });

  it("the SDK gets a BadRequestError for role 'usr', naming the field", async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-anything', maxRetries: 0 });
    const error = await client.chat.completions
      .create({
        model: 'mock',
        messages: [{ role: 'usr', content: 'hi' } as unknown as OpenAI.ChatCompletionMessageParam],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, param: 'messages[0].role', code: null });
  });
});

describe('other endpoints use the same words', () => {
  it('completions: prompt missing, and prompt of the wrong type', async () => {
    const missing = await post('/completions', { model: 'mock' });
    expect(missing.status).toBe(400);
    expect(
      expectEnvelope(missing.json, {
        type: 'invalid_request_error',
        code: null,
        param: 'prompt',
      }).message,
    ).toBe("Missing required parameter: 'prompt'.");
    const wrong = await post('/completions', { model: 'mock', prompt: 5 });
    expect(wrong.status).toBe(400);
    expect(
      expectEnvelope(wrong.json, { type: 'invalid_request_error', code: null, param: 'prompt' }).message,
    ).toBe(
      "Invalid type for 'prompt': expected a string, an array of strings, or token arrays, but got an integer instead.",
    );
  });

  it('embeddings: an unsupported encoding_format lists the supported ones', async () => {
    const response = await post('/embeddings', { model: 'mock', input: 'hi', encoding_format: 'utf8' });
    expect(response.status).toBe(400);
    expect(
      expectEnvelope(response.json, {
        type: 'invalid_request_error',
        code: null,
        param: 'encoding_format',
      }).message,
    ).toBe("Invalid value for 'encoding_format': 'utf8'. Supported values are: 'float' and 'base64'.");
  });

  it('responses: stream of the wrong type is not "missing"', async () => {
    const response = await post('/responses', { model: 'mock', input: 'hi', stream: 1 });
    expect(response.status).toBe(400);
    expect(
      expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param: 'stream' }).message,
    ).toBe("Invalid type for 'stream': expected a boolean, but got an integer instead.");
  });
});
