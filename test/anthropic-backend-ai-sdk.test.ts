import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount, jsonSchema, streamText, tool } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoScript, FakeAnthropic } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/** `type: anthropic` with the Vercel AI SDK's OpenAI provider (`.chat(model)`) as the client. */

let fake: FakeAnthropic;
let gw: TestGateway;

beforeAll(async () => {
  fake = new FakeAnthropic();
  const url = await fake.start();
  gw = await startGateway({
    backends: { claude: { type: 'anthropic', baseUrl: url, apiKey: 'sk-ant-ai-sdk-secret' } },
    models: { 'claude-haiku': { backend: 'claude', model: 'claude-haiku-4-5' } },
  });
});

afterAll(async () => {
  await gw?.close();
  await fake?.stop();
});

afterEach(() => {
  fake.script = echoScript;
  fake.requests.length = 0;
});

function model() {
  return createOpenAI({ baseURL: gw.baseURL, apiKey: 'client-key' }).chat('claude-haiku');
}

describe('Vercel AI SDK against a Claude model', () => {
  it('generateText: text, finish reason, usage with cache reads', async () => {
    fake.script = () => ({
      kind: 'message',
      message: {
        content: [{ type: 'text', text: 'Bonjour.' }],
        stop_reason: 'end_turn',
        usage: {
          input_tokens: 12,
          output_tokens: 3,
          cache_read_input_tokens: 400,
          cache_creation_input_tokens: 0,
        },
      },
    });
    const result = await generateText({
      model: model(),
      system: 'Speak French.',
      prompt: 'Hello',
      maxRetries: 0,
    });
    expect(result.text).toBe('Bonjour.');
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokens).toBe(412);
    expect(result.usage.outputTokens).toBe(3);
    expect(result.usage.inputTokenDetails.cacheReadTokens).toBe(400);
    expect(fake.lastBody().system).toEqual([{ type: 'text', text: 'Speak French.' }]);
  });

  it('streamText: text, finish reason and usage from the stream', async () => {
    fake.script = () => ({
      kind: 'message',
      message: {
        content: [{ type: 'text', text: 'A streamed reply from Claude.' }],
        stop_reason: 'max_tokens',
        usage: { input_tokens: 8, output_tokens: 6 },
      },
    });
    const result = streamText({ model: model(), prompt: 'Go', maxOutputTokens: 6, maxRetries: 0 });
    expect(await result.text).toBe('A streamed reply from Claude.');
    expect(await result.finishReason).toBe('length');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(8);
    expect(usage.outputTokens).toBe(6);
    expect(fake.lastBody()).toMatchObject({ stream: true, max_tokens: 6 });
  });

  it('a tool round trip: the call, its execution, the result sent back as tool_result', async () => {
    fake.script = (request) => {
      const messages = (request.json?.messages ?? []) as Array<{
        content: Array<{ type: string; content?: unknown }>;
      }>;
      const result = messages.at(-1)?.content.find((block) => block.type === 'tool_result');
      if (!result)
        return {
          kind: 'message',
          message: {
            content: [{ type: 'tool_use', id: 'toolu_ai', name: 'add', input: { a: 2, b: 3 } }],
            stop_reason: 'tool_use',
            usage: { input_tokens: 20, output_tokens: 10 },
          },
        };
      return {
        kind: 'message',
        message: {
          content: [{ type: 'text', text: 'The sum is 5.' }],
          stop_reason: 'end_turn',
          usage: { input_tokens: 30, output_tokens: 5 },
        },
      };
    };
    const result = await generateText({
      model: model(),
      prompt: 'Add 2 and 3',
      maxRetries: 0,
      stopWhen: isStepCount(2),
      tools: {
        add: tool({
          description: 'Adds two numbers',
          inputSchema: jsonSchema<{ a: number; b: number }>({
            type: 'object',
            properties: { a: { type: 'number' }, b: { type: 'number' } },
            required: ['a', 'b'],
          }),
          execute: async ({ a, b }) => String(a + b),
        }),
      },
    });
    expect(result.text).toBe('The sum is 5.');
    expect(result.steps).toHaveLength(2);
    expect(result.steps[0]?.toolCalls[0]).toMatchObject({ toolName: 'add', input: { a: 2, b: 3 } });
    const second = fake.lastBody().messages as Array<{ role: string; content: unknown[] }>;
    expect(second.at(-2)).toEqual({
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_ai', name: 'add', input: { a: 2, b: 3 } }],
    });
    expect(second.at(-1)?.content).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_ai', content: [{ type: 'text', text: '5' }] },
    ]);
  });
});
