import Anthropic from '@anthropic-ai/sdk';
import type { ChatHistoryItem, ChatModelFunctions, LlamaModel } from 'node-llama-cpp';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeLlamaCpp } from '../src/backends/llama-cpp/load-node-llama-cpp.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectErrorResponse,
  expectResponse,
} from './support/spec-validator.js';
import { startTinyModelWithReference, type TinyModelGateway } from './support/tiny-gguf-gateway.js';
import {
  clock,
  fitsTime,
  fitsWeather,
  type Tool,
  weather,
  weatherParameters,
} from './support/weather-tools.js';

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

let gw: TinyModelGateway;
let client: OpenAI;
let library: NodeLlamaCpp;
/** The same GGUF loaded apart from the gateway: its template and tokenizer are the reference. */
let reference: LlamaModel;

beforeAll(async () => {
  ({ gw, client, library, reference } = await startTinyModelWithReference(2048));
});

afterAll(async () => {
  await reference?.dispose();
  await gw?.close();
});

const question: Message[] = [{ role: 'user', content: 'weather in the city' }];

/** What the model's template (node-llama-cpp's wrapper for it) renders, counted by its tokenizer. */
function renderedTokens(history: ChatHistoryItem[], tools: Tool[]): number {
  const functions: Record<string, { description?: string; params?: unknown }> = {};
  for (const tool of tools)
    functions[tool.function.name] = {
      description: tool.function.description,
      params: tool.function.parameters,
    };
  const state = library.resolveChatWrapper(reference).generateContextState({
    chatHistory: history,
    availableFunctions: functions as ChatModelFunctions,
    documentFunctionParams: true,
  });
  return state.contextText.tokenize(reference.tokenizer).length;
}

function onlyToolCall(completion: OpenAI.Chat.Completions.ChatCompletion) {
  const message = completion.choices[0]?.message;
  expect(message?.content).toBeNull();
  expect(message?.tool_calls).toHaveLength(1);
  const call = message?.tool_calls?.[0];
  if (call?.type !== 'function') throw new Error('expected a function tool call');
  expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
  return call;
}

async function rawPost(body: unknown): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Every `data:` payload of an SSE body but `[DONE]`, which must end it. */
function sseChunks(text: string): unknown[] {
  const events = text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
  expect(events.at(-1)).toBe('[DONE]');
  return events.slice(0, -1).map((event) => JSON.parse(event) as unknown);
}

describe('a forced tool call', () => {
  it('with a named tool_choice: arguments that fit the schema, finish_reason tool_calls, exact usage', async () => {
    const expectedPrompt = renderedTokens(
      [
        { type: 'user', text: 'weather in the city' },
        { type: 'model', response: [] },
      ],
      [weather, clock],
    );
    for (const seed of [1, 2, 3, 4, 5]) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: question,
        tools: [weather, clock],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        max_tokens: 200,
        temperature: 1,
        seed,
      });
      expectChatCompletion(completion);
      expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
      const call = onlyToolCall(completion);
      expect(call.function.name).toBe('get_weather');
      const args: unknown = JSON.parse(call.function.arguments);
      expect(fitsWeather(args), `seed ${seed}: ${call.function.arguments}`).toBe(true);
      expect(completion.usage?.prompt_tokens).toBe(expectedPrompt);
      // The call took exactly completion_tokens tokens: with one fewer allowed, all are used.
      const tokens = completion.usage?.completion_tokens ?? 0;
      const ask = (maxTokens: number) =>
        client.chat.completions.create({
          model: 'tiny',
          messages: question,
          tools: [weather, clock],
          tool_choice: { type: 'function', function: { name: 'get_weather' } },
          max_tokens: maxTokens,
          temperature: 1,
          seed,
        });
      const short = await ask(tokens - 1);
      expectChatCompletion(short);
      expect(short.usage?.completion_tokens).toBe(tokens - 1);
      const shortArgs = onlyToolCall(short).function.arguments;
      expect(call.function.arguments.startsWith(shortArgs)).toBe(true);
      // The last token may be the outer object's brace, after the arguments are whole.
      expect(short.choices[0]?.finish_reason).toBe(
        shortArgs === call.function.arguments ? 'tool_calls' : 'length',
      );
      // Cut in the middle of the arguments: the partial arguments, finish_reason length.
      const cut = await ask(Math.floor(tokens / 2));
      expectChatCompletion(cut);
      expect(cut.choices[0]?.finish_reason).toBe('length');
      const partial = onlyToolCall(cut);
      expect(partial.function.name).toBe('get_weather');
      expect(call.function.arguments.startsWith(partial.function.arguments)).toBe(true);
      expect(partial.function.arguments.length).toBeLessThan(call.function.arguments.length);
    }
  });

  it('the rendered prompt shows the tools: more prompt tokens than without them', async () => {
    const plain = await client.chat.completions.create({
      model: 'tiny',
      messages: question,
      max_tokens: 1,
    });
    const withTools = await client.chat.completions.create({
      model: 'tiny',
      messages: question,
      tools: [weather],
      tool_choice: 'required',
      max_tokens: 1,
    });
    const functionsText = library
      .resolveChatWrapper(reference)
      .generateAvailableFunctionsSystemText(
        {
          get_weather: { description: 'The forecast for a city', params: weatherParameters },
        } as ChatModelFunctions,
        { documentParams: true },
      )
      .toString();
    expect(functionsText).toContain('get_weather');
    expect(withTools.usage?.prompt_tokens).toBeGreaterThan(
      (plain.usage?.prompt_tokens ?? 0) + reference.tokenize('get_weather', false).length,
    );
  });

  it("with 'required' and two tools: a call to one of them, fitting that tool's schema", async () => {
    const names = new Set<string>();
    for (let seed = 1; seed <= 16; seed++) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: question,
        tools: [weather, clock],
        tool_choice: 'required',
        max_tokens: 200,
        temperature: 2,
        seed,
      });
      expectChatCompletion(completion);
      expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
      const call = onlyToolCall(completion);
      const args: unknown = JSON.parse(call.function.arguments);
      names.add(call.function.name);
      if (call.function.name === 'get_weather') expect(fitsWeather(args), call.function.arguments).toBe(true);
      else {
        expect(call.function.name).toBe('get_time');
        expect(fitsTime(args), call.function.arguments).toBe(true);
      }
    }
    // Either branch of the grammar's oneOf can be taken. The tiny model leans to get_time; seeded
    // sampling is reproducible, and at temperature 2 these seeds include get_weather.
    expect([...names].sort()).toEqual(['get_time', 'get_weather']);
  });

  it('with allowed_tools in required mode: a call to an allowed tool only', async () => {
    for (const seed of [1, 2, 3]) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: question,
        tools: [weather, clock],
        tool_choice: {
          type: 'allowed_tools',
          allowed_tools: {
            mode: 'required',
            tools: [{ type: 'function', function: { name: 'get_weather' } }],
          },
        },
        max_tokens: 200,
        temperature: 2,
        seed,
      });
      expectChatCompletion(completion);
      expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
      const call = onlyToolCall(completion);
      expect(call.function.name).toBe('get_weather');
      expect(fitsWeather(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
    }
  });

  it('streams OpenAI tool-call deltas that the SDK assembles into the same call, usage last', async () => {
    for (const [tools, choice] of [
      [[weather, clock], { type: 'function', function: { name: 'get_weather' } }],
      [[weather, clock], 'required'],
    ] as const) {
      const request = {
        model: 'tiny',
        messages: question,
        tools: [...tools],
        tool_choice: choice,
        max_tokens: 200,
        temperature: 1,
        seed: 7,
      };
      const whole = await client.chat.completions.create(request);
      const wholeCall = onlyToolCall(whole);
      const response = await rawPost({ ...request, stream: true, stream_options: { include_usage: true } });
      expect(response.status).toBe(200);
      const chunks = sseChunks(await response.text()) as OpenAI.Chat.Completions.ChatCompletionChunk[];
      for (const chunk of chunks) expectChatCompletionChunk(chunk);
      expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
      const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
      // The first tool-call delta opens the call (id, type, name, no arguments yet); the others
      // only add argument text to call 0.
      expect(deltas[0]).toMatchObject({
        index: 0,
        type: 'function',
        function: { name: wholeCall.function.name },
      });
      expect(deltas[0]?.id).toMatch(/^call_/);
      expect(deltas[0]?.function?.arguments).toBe('');
      for (const delta of deltas.slice(1)) {
        expect(Object.keys(delta).sort()).toEqual(['function', 'index']);
        expect(delta.index).toBe(0);
        expect(Object.keys(delta.function ?? {})).toEqual(['arguments']);
      }
      expect(deltas.map((delta) => delta.function?.arguments ?? '').join('')).toBe(
        wholeCall.function.arguments,
      );
      const finish = chunks.at(-2);
      expect(finish?.choices[0]?.finish_reason).toBe('tool_calls');
      const usage = chunks.at(-1);
      expect(usage?.choices).toEqual([]);
      expect(usage?.usage).toEqual(whole.usage);

      const stream = client.chat.completions.stream(request);
      const final = await stream.finalChatCompletion();
      expect(final.choices[0]?.finish_reason).toBe('tool_calls');
      const streamedCall = final.choices[0]?.message.tool_calls?.[0];
      expect(streamedCall?.type).toBe('function');
      if (streamedCall?.type !== 'function') return;
      expect(streamedCall.function.name).toBe(wholeCall.function.name);
      expect(streamedCall.function.arguments).toBe(wholeCall.function.arguments);
      expect(streamedCall.id).toMatch(/^call_/);
    }
  });

  it('streamed and cut by max_tokens: finish_reason length with the partial arguments', async () => {
    const request = {
      model: 'tiny',
      messages: question,
      tools: [weather],
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
      temperature: 1,
      seed: 3,
    };
    const whole = await client.chat.completions.create({ ...request, max_tokens: 200 });
    const full = onlyToolCall(whole).function.arguments;
    const stream = await client.chat.completions.create({ ...request, max_tokens: 6, stream: true });
    let args = '';
    let finish: string | null | undefined;
    let name: string | undefined;
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      const delta = chunk.choices[0]?.delta.tool_calls?.[0];
      name = delta?.function?.name ?? name;
      args += delta?.function?.arguments ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    expect(name).toBe('get_weather');
    expect(full.startsWith(args)).toBe(true);
    expect(args.length).toBeLessThan(full.length);
  });

  it('cut before the name is whole (two tools): finish_reason length and no call to tell', async () => {
    const request = {
      model: 'tiny',
      messages: question,
      tools: [weather, clock],
      tool_choice: 'required' as const,
      max_tokens: 2,
      temperature: 0,
    };
    const completion = await client.chat.completions.create(request);
    expectChatCompletion(completion);
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.choices[0]?.message.content).toBeNull();
    expect(completion.choices[0]?.message.tool_calls).toBeUndefined();
    const response = await rawPost({ ...request, stream: true });
    const chunks = sseChunks(await response.text()) as OpenAI.Chat.Completions.ChatCompletionChunk[];
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    expect(chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])).toEqual([]);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('length');
  });
});

describe('tool results sent back', () => {
  const call = {
    id: 'call_abc123',
    type: 'function' as const,
    function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' },
  };

  it('a round trip: the assistant tool_calls and the tool message give a text answer', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: [
        ...question,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: 'call_abc123', content: '{"forecast":"sunny"}' },
      ],
      tools: [weather],
      max_tokens: 5,
      temperature: 0,
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.choices[0]?.message.tool_calls).toBeUndefined();
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBe(5);
    // The model continues its own response after the call's result, as node-llama-cpp models it.
    expect(completion.usage?.prompt_tokens).toBe(
      renderedTokens(
        [
          { type: 'user', text: 'weather in the city' },
          {
            type: 'model',
            response: [
              {
                type: 'functionCall',
                name: 'get_weather',
                params: { city: 'Paris', days: 2 },
                result: { forecast: 'sunny' },
              },
            ],
          },
        ],
        [weather],
      ),
    );
  });

  it("the assistant's text after the results continues the same response, then a new turn", async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: [
        ...question,
        { role: 'assistant', content: 'let me look', tool_calls: [call] },
        { role: 'tool', tool_call_id: 'call_abc123', content: 'sunny' },
        { role: 'assistant', content: 'it is sunny' },
        { role: 'user', content: 'thanks' },
      ],
      tools: [weather],
      max_tokens: 3,
      temperature: 0,
    });
    expectChatCompletion(completion);
    expect(completion.usage?.prompt_tokens).toBe(
      renderedTokens(
        [
          { type: 'user', text: 'weather in the city' },
          {
            type: 'model',
            response: [
              'let me look',
              {
                type: 'functionCall',
                name: 'get_weather',
                params: { city: 'Paris', days: 2 },
                result: 'sunny',
              },
              'it is sunny',
            ],
          },
          { type: 'user', text: 'thanks' },
          { type: 'model', response: [] },
        ],
        [weather],
      ),
    );
  });

  it('a tool message whose tool_call_id matches no call is a 400 naming it', async () => {
    const response = await rawPost({
      model: 'tiny',
      messages: [
        ...question,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: 'call_abc123', content: 'sunny' },
        { role: 'tool', tool_call_id: 'call_unknown', content: 'rain' },
      ],
      tools: [weather],
      max_tokens: 5,
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string; param: string } };
    expectErrorResponse(body);
    expect(body.error.message).toContain('call_unknown');
    expect(body.error.param).toBe('messages[3].tool_call_id');
  });

  it('a tool call without its result is a 400 naming it', async () => {
    const response = await rawPost({
      model: 'tiny',
      messages: [
        ...question,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'user', content: 'and?' },
      ],
      tools: [weather],
      max_tokens: 5,
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string; param: string } };
    expectErrorResponse(body);
    expect(body.error.message).toContain('call_abc123');
    expect(body.error.param).toBe('messages[1].tool_calls[0]');
  });
});

describe('tool_choice none and auto', () => {
  it('answer text with the tools in the prompt', async () => {
    const usages: number[] = [];
    for (const choice of ['none', 'auto', undefined] as const) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: question,
        tools: [weather],
        ...(choice ? { tool_choice: choice } : {}),
        max_tokens: 4,
        temperature: 0,
      });
      expectChatCompletion(completion);
      expect(completion.choices[0]?.finish_reason).toBe('length');
      expect(completion.choices[0]?.message.tool_calls).toBeUndefined();
      expect(typeof completion.choices[0]?.message.content).toBe('string');
      expect(completion.usage?.completion_tokens).toBe(4);
      usages.push(completion.usage?.prompt_tokens ?? 0);
    }
    const expected = renderedTokens(
      [
        { type: 'user', text: 'weather in the city' },
        { type: 'model', response: [] },
      ],
      [weather],
    );
    expect(usages).toEqual([expected, expected, expected]);
  });
});

describe('refused tool requests', () => {
  it('answer a 400 in OpenAI shape naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
      [{ tool_choice: 'required' }, 'tool_choice'],
      [{ tools: [weather], tool_choice: 'sometimes' }, 'tool_choice'],
      [{ tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'tools[0]'],
      [{ tools: [weather, weather] }, 'tools[1].function.name'],
      [
        { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] },
        'tools[0].function.parameters',
      ],
      [{ tools: [weather], parallel_tool_calls: 'yes' }, 'parallel_tool_calls'],
    ];
    for (const [extra, param] of cases) {
      const response = await rawPost({ model: 'tiny', messages: question, max_tokens: 2, ...extra });
      expect(response.status, param).toBe(400);
      const body = (await response.json()) as { error: { param: string } };
      expectErrorResponse(body);
      expect(body.error.param).toBe(param);
    }
    const legacy = await fetch(`${gw.baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'hi', tools: [weather], max_tokens: 2 }),
    });
    expect(legacy.status).toBe(400);
  });
});

describe("the gateway's translations carry the call", () => {
  it('Responses API: a named tool_choice gives a function_call output item', async () => {
    const response = await client.responses.create({
      model: 'tiny',
      input: 'weather in the city',
      tools: [{ type: 'function', name: 'get_weather', parameters: weatherParameters, strict: false }],
      tool_choice: { type: 'function', name: 'get_weather' },
      max_output_tokens: 200,
      temperature: 1,
      seed: 2,
    } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    expectResponse(response);
    expect(response.status).toBe('completed');
    expect(response.output).toHaveLength(1);
    const item = response.output[0];
    if (item?.type !== 'function_call') throw new Error(`expected a function_call, got ${item?.type}`);
    expect(item.name).toBe('get_weather');
    expect(fitsWeather(JSON.parse(item.arguments)), item.arguments).toBe(true);
  });

  it('Messages API: tool_choice tool gives a tool_use block and stop_reason tool_use', async () => {
    const anthropic = new Anthropic({
      baseURL: gw.baseURL.replace(/\/v1$/, ''),
      apiKey: 'unused',
      maxRetries: 0,
    });
    const message = await anthropic.messages.create({
      model: 'tiny',
      max_tokens: 200,
      messages: [{ role: 'user', content: 'weather in the city' }],
      tools: [{ name: 'get_weather', input_schema: weatherParameters as Anthropic.Tool.InputSchema }],
      tool_choice: { type: 'tool', name: 'get_weather' },
    });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content).toHaveLength(1);
    const block = message.content[0];
    if (block?.type !== 'tool_use') throw new Error(`expected a tool_use block, got ${block?.type}`);
    expect(block.name).toBe('get_weather');
    expect(fitsWeather(block.input), JSON.stringify(block.input)).toBe(true);
  });
});
