import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startGateway({
    backends: { mock: { type: 'mock', chunks: 3 } },
    models: { mock: { backend: 'mock' } },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
});

describe('Responses API', () => {
  it('creates a response', async () => {
    const response = await client.responses.create({ model: 'mock', input: 'respond with this' });
    expectResponse(response);
    expect(response.output_text).toBe('respond with this');
    expect(response.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('streams named events the SDK assembles', async () => {
    const stream = client.responses.stream({
      model: 'mock',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'streamed reply' }] }],
    });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('streamed reply');
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(types.filter((t) => t === 'response.output_text.delta').length).toBe(3);
  });
});
