import { fileURLToPath } from 'node:url';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * The Responses API on a user-module backend configured as a user would (`type: module`), which
 * speaks only chat completions: examples/backends/echo-function.mjs, answering in capitals.
 */
const EXAMPLE = fileURLToPath(new URL('../examples/backends/echo-function.mjs', import.meta.url));

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startGateway({
    backends: { echo: { type: 'module', module: EXAMPLE, options: { shout: true } } },
    models: { echo: { backend: 'echo' } },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});

describe('Responses API on a module backend', () => {
  it("responses.create and responses.stream: spec-valid, with the module's usage", async () => {
    const reference = await client.chat.completions.create({
      model: 'echo',
      messages: [{ role: 'user', content: 'hello module' }],
    });
    const response = await client.responses.create({ model: 'echo', input: 'hello module' });
    expectResponse(response);
    expect(response.output_text).toBe('HELLO MODULE');
    expect(response.usage).toMatchObject({
      input_tokens: reference.usage?.prompt_tokens,
      output_tokens: reference.usage?.completion_tokens,
      total_tokens: reference.usage?.total_tokens,
    });
    const stream = client.responses.stream({ model: 'echo', input: 'hello stream' });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    expect((await stream.finalResponse()).output_text).toBe('HELLO STREAM');
    expect(types.at(-1)).toBe('response.completed');
  });

  it('the Vercel AI SDK default provider: generateText and streamText', async () => {
    const model = createOpenAI({ baseURL: gw.baseURL, apiKey: 'unused' })('echo');
    expect((await generateText({ model, prompt: 'hello sdk' })).text).toBe('HELLO SDK');
    const streamed = streamText({ model, prompt: 'hello sdk stream' });
    expect(await streamed.text).toBe('HELLO SDK STREAM');
    expect(await streamed.finishReason).toBe('stop');
  });
});
