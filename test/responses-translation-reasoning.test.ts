import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chatRequestOf } from '../src/backends/responses-translation/request-translation.js';
import { DEFAULT_USAGE, FakeAnthropic, type MessageFixture } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * Claude's extended thinking over `/v1/responses`: the signed thinking blocks of a turn come back
 * as `reasoning` items (signature in `encrypted_content`), and sent back in `input` they reach
 * Claude again as the thinking block that must open an assistant turn that used tools.
 */

type Json = Record<string, unknown>;

const SIGNATURE = 'EqQBCkYIBRgCKkDsig+/base64==';
const REDACTED = 'EmwKAhgBEgy3redacted';

const TOOL_TURN: MessageFixture = {
  content: [
    { type: 'thinking', thinking: 'The user wants the weather; call the tool.', signature: SIGNATURE },
    { type: 'redacted_thinking', data: REDACTED },
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
  ],
  stop_reason: 'tool_use',
  usage: DEFAULT_USAGE,
};
const FINAL_TURN: MessageFixture = {
  content: [{ type: 'text', text: 'Sunny in Paris.' }],
  stop_reason: 'end_turn',
  usage: DEFAULT_USAGE,
};

const TOOLS = [
  {
    type: 'function' as const,
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    strict: false,
  },
];

/** The second turn: the question, the first turn's output as it came, and the tool's answer. */
function secondTurn(output: unknown[], callId: string) {
  return {
    model: 'claude',
    input: [
      { role: 'user' as const, content: 'Weather in Paris?' },
      ...(output as OpenAI.Responses.ResponseInputItem[]),
      { type: 'function_call_output' as const, call_id: callId, output: '22C, sunny' },
    ],
    tools: TOOLS,
    reasoning: { effort: 'low' as const },
  };
}

let fake: FakeAnthropic;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  fake = new FakeAnthropic();
  const url = await fake.start();
  gw = await startGateway({
    backends: { claude: { type: 'anthropic', baseUrl: url, apiKey: 'sk-ant-test', maxTokens: 8000 } },
    models: { claude: { backend: 'claude', model: 'claude-sonnet-4-5' } },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await fake?.stop();
});

beforeEach(() => {
  // The first turn calls the tool; once its result is in, the final answer.
  fake.script = (request) => {
    const messages = (request.json?.messages ?? []) as unknown[];
    return { kind: 'message', message: messages.length > 1 ? FINAL_TURN : TOOL_TURN };
  };
});

function expectReasoningItems(output: Json[]): void {
  expect(output.map((item) => item.type)).toEqual(['reasoning', 'reasoning', 'message', 'function_call']);
  expect(output[0]).toMatchObject({
    type: 'reasoning',
    id: expect.stringMatching(/^rs_/),
    status: 'completed',
    summary: [{ type: 'summary_text', text: 'The user wants the weather; call the tool.' }],
    encrypted_content: SIGNATURE,
  });
  expect(output[1]).toMatchObject({ type: 'reasoning', summary: [] });
  expect(output[1]?.encrypted_content).toEqual(expect.stringContaining(REDACTED));
}

/** The second turn's request as Claude gets it: the assistant turn opens with the signed blocks. */
function expectThinkingSentBack(): void {
  const body = fake.lastBody();
  expect(body.thinking).toMatchObject({ type: 'enabled' });
  const messages = body.messages as Array<{ role: string; content: Json[] }>;
  const assistant = messages.find((message) => message.role === 'assistant');
  expect(assistant?.content).toEqual([
    { type: 'thinking', thinking: 'The user wants the weather; call the tool.', signature: SIGNATURE },
    { type: 'redacted_thinking', data: REDACTED },
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
  ]);
}

describe('Claude thinking over /v1/responses', () => {
  it('JSON: reasoning items with the signature, sent back as the thinking blocks of the tool turn', async () => {
    const first = await client.responses.create({
      model: 'claude',
      input: 'Weather in Paris?',
      tools: TOOLS,
      reasoning: { effort: 'low' },
    });
    expectResponse(JSON.parse(JSON.stringify(first)));
    const output = first.output as unknown as Json[];
    expectReasoningItems(output);
    const call = first.output.find((item) => item.type === 'function_call');
    if (call?.type !== 'function_call') throw new Error('no function call');

    const second = await client.responses.create(secondTurn(first.output, call.call_id));
    expect(second.output_text).toBe('Sunny in Paris.');
    expectThinkingSentBack();
  });

  it('stream: the same reasoning items, with the events the spec names, and the same second turn', async () => {
    const stream = client.responses.stream({
      model: 'claude',
      input: 'Weather in Paris?',
      tools: TOOLS,
      reasoning: { effort: 'low' },
    });
    const events: Json[] = [];
    for await (const event of stream) events.push(JSON.parse(JSON.stringify(event)) as Json);
    const first = await stream.finalResponse();
    for (const event of events) {
      const { snapshot: _snapshot, ...wire } = event;
      expectResponseStreamEvent(wire);
    }
    const types = events.map((event) => event.type);
    expect(types).toContain('response.reasoning_summary_text.delta');
    const added = events.filter((event) => event.type === 'response.output_item.added');
    expect(added.map((event) => (event.item as Json).type)).toEqual([
      'reasoning',
      'reasoning',
      'message',
      'function_call',
    ]);
    const done = events.filter(
      (event) => event.type === 'response.output_item.done' && (event.item as Json).type === 'reasoning',
    );
    expect((done[0] as Json).item).toMatchObject({ encrypted_content: SIGNATURE });
    const completed = events.find((event) => event.type === 'response.completed');
    expectReasoningItems(((completed as Json).response as Json).output as Json[]);
    expectReasoningItems(first.output as unknown as Json[]);
    const call = first.output.find((item) => item.type === 'function_call');
    if (call?.type !== 'function_call') throw new Error('no function call');

    const second = client.responses.stream(secondTurn(first.output, call.call_id));
    expect((await second.finalResponse()).output_text).toBe('Sunny in Paris.');
    expectThinkingSentBack();
  });
});

describe('reasoning input items for other backends', () => {
  const input = [
    { role: 'user', content: 'hi' },
    {
      type: 'reasoning',
      id: 'rs_1',
      summary: [{ type: 'summary_text', text: 't' }],
      encrypted_content: 'sig',
    },
    { type: 'reasoning', id: 'rs_2', summary: [] },
    { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
    { type: 'function_call_output', call_id: 'c1', output: 'ok' },
  ];

  it('are dropped when the backend does not take thinking_blocks', () => {
    const messages = chatRequestOf({ model: 'm', input }, 'm', false).messages as Json[];
    expect(messages).toHaveLength(3);
    for (const message of messages) expect(message).not.toHaveProperty('thinking_blocks');
  });

  it('become thinking_blocks for one that does, leaving out those without encrypted_content', () => {
    const messages = chatRequestOf({ model: 'm', input }, 'm', false, { thinkingBlocks: true })
      .messages as Json[];
    expect(messages[1]).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 'sig' }],
    });
  });
});
