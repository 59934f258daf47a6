import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/**
 * The Responses API on the in-process GGUF model, which speaks only chat completions itself: the
 * official SDK and the Vercel AI SDK's default provider get spec-valid answers whose usage is the
 * model's own count (the same as its chat completion's).
 */
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

/** The same question as a chat completion: the reference for text and usage. */
async function chatReference(maxTokens: number) {
  return client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'user', content: 'hello world' }],
    max_tokens: maxTokens,
    temperature: 0,
  });
}

describe('Responses API on the in-process model', () => {
  it('responses.create: max_output_tokens reached is incomplete; usage is the chat usage', async () => {
    const reference = await chatReference(5);
    const response = await client.responses.create({
      model: 'tiny',
      input: 'hello world',
      max_output_tokens: 5,
      temperature: 0,
    });
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    });
    expect(response.output_text).toBe(reference.choices[0]?.message.content);
    expect(response.usage).toMatchObject({
      input_tokens: reference.usage?.prompt_tokens,
      output_tokens: 5,
      total_tokens: reference.usage?.total_tokens,
    });
  });

  it('responses.stream: spec-valid events, the same text, usage on response.incomplete', async () => {
    const reference = await chatReference(6);
    const stream = client.responses.stream({
      model: 'tiny',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'hello world' }] }],
      max_output_tokens: 6,
      temperature: 0,
    });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    const final = await stream.finalResponse();
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.incomplete');
    expect(final.output_text).toBe(reference.choices[0]?.message.content);
    expect(final.usage).toMatchObject({ input_tokens: reference.usage?.prompt_tokens, output_tokens: 6 });
  });

  it('the Vercel AI SDK default provider: generateText and streamText', async () => {
    const reference = await chatReference(4);
    const model = createOpenAI({ baseURL: gw.baseURL, apiKey: 'unused' })('tiny');
    const ask = { model, prompt: 'hello world', maxOutputTokens: 4, temperature: 0 };
    const generated = await generateText(ask);
    expect(generated.text).toBe(reference.choices[0]?.message.content);
    expect(generated.finishReason).toBe('length');
    expect(generated.usage).toMatchObject({ inputTokens: reference.usage?.prompt_tokens, outputTokens: 4 });
    const streamed = streamText(ask);
    expect(await streamed.text).toBe(generated.text);
    expect(await streamed.finishReason).toBe('length');
    expect((await streamed.usage).outputTokens).toBe(4);
  });
});
