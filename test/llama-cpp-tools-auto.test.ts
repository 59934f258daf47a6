import {
  type ChatHistoryItem,
  ChatMLChatWrapper,
  type ChatModelFunctions,
  type ChatWrapper,
  DeepSeekChatWrapper,
  FunctionaryChatWrapper,
  Gemma4ChatWrapper,
  GeneralChatWrapper,
  Llama3_1ChatWrapper,
  Llama3ChatWrapper,
  type LlamaModel,
  MistralChatWrapper,
  QwenChatWrapper,
  SeedChatWrapper,
} from 'node-llama-cpp';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNodeLlamaCpp, type NodeLlamaCpp } from '../src/backends/llama-cpp/load-node-llama-cpp.js';
import { type DetectorEvent, ToolCallDetector } from '../src/backends/llama-cpp/tool-call-detector.js';
import { ToolCallSteer } from '../src/backends/llama-cpp/tool-call-steer.js';
import { callSyntaxOf } from '../src/backends/llama-cpp/tool-call-syntax.js';
import { seededRandom as random } from './support/seeded-random.js';
import { expectChatCompletion, expectChatCompletionChunk } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';
import { clock, fitsTool, type Tool, weather } from './support/weather-tools.js';

type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk;

/** `text` cut into pieces of 1 to 6 characters, as tokens might come. */
function pieces(text: string, seed: number): string[] {
  const next = random(seed);
  const out: string[] = [];
  for (let at = 0; at < text.length; ) {
    const length = 1 + Math.floor(next() * 6);
    out.push(text.slice(at, at + length));
    at += length;
  }
  return out;
}

const NAMES = ['get_weather', 'get_time'];

/** Feeds `text` to a detector piece by piece; checks that the streamed events tell the result. */
function detect(wrapper: ChatWrapper, text: string, seed: number, parallel = true) {
  const detector = new ToolCallDetector(callSyntaxOf(wrapper), NAMES, parallel);
  const events: DetectorEvent[] = [];
  for (const piece of pieces(text, seed)) events.push(...detector.push(piece));
  events.push(...detector.end());
  const result = detector.result();
  const content = events.flatMap((event) => (event.type === 'content' ? [event.text] : [])).join('');
  expect(content).toBe(result.content ?? '');
  return { events, result };
}

/** The calls of a detection as plain values, arguments parsed. */
function callsOf(result: ReturnType<typeof detect>['result']) {
  return result.calls.map((call) => ({ name: call.name, params: JSON.parse(call.arguments) as unknown }));
}

const call = (wrapper: ChatWrapper, name: string, params: unknown) =>
  wrapper.generateFunctionCall(name, params).toString();

const weatherParams = { city: 'Paris', days: 2 };
const timeParams = { zone: 'UTC', note: 'a "quoted" } brace' };
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

describe('the detector with node-llama-cpp chat wrappers', () => {
  const wrappers: Array<[string, ChatWrapper]> = [
    ['ChatML (generic ||call: syntax)', new ChatMLChatWrapper()],
    ['General', new GeneralChatWrapper()],
    ['Llama 3.1', new Llama3_1ChatWrapper()],
    ['Qwen', new QwenChatWrapper()],
    ['Mistral', new MistralChatWrapper()],
    ['Llama 3', new Llama3ChatWrapper()],
    ['Functionary', new FunctionaryChatWrapper()],
    ['DeepSeek', new DeepSeekChatWrapper()],
    ['Seed', new SeedChatWrapper()],
    ['Gemma 4', new Gemma4ChatWrapper()],
  ];

  for (const [label, wrapper] of wrappers) {
    // Mistral writes its calls in a section, even one call.
    const section = (calls: string[]) =>
      wrapper instanceof MistralChatWrapper ? `[TOOL_CALLS][${calls.join(', ')}]` : calls.join('\n');

    it(`${label}: a call alone is a tool call with no content, in any split`, () => {
      for (const seed of SEEDS) {
        const { events, result } = detect(
          wrapper,
          section([call(wrapper, 'get_weather', weatherParams)]),
          seed,
        );
        expect(result.content).toBeNull();
        expect(callsOf(result)).toEqual([{ name: 'get_weather', params: weatherParams }]);
        expect(result.calls[0]?.complete).toBe(true);
        // The name comes first, then the arguments in fragments that add up to them.
        expect(events[0]).toEqual({ type: 'call', index: 0, name: 'get_weather' });
        const fragments = events.flatMap((event) => (event.type === 'arguments' ? [event.fragment] : []));
        expect(fragments.join('')).toBe(result.calls[0]?.arguments);
        expect(events.some((event) => event.type === 'content')).toBe(false);
      }
    });

    it(`${label}: text then a call gives both`, () => {
      for (const seed of SEEDS) {
        const text = 'Let me look that up. ';
        const { result } = detect(wrapper, text + section([call(wrapper, 'get_time', timeParams)]), seed);
        expect(result.content).toBe(text);
        expect(callsOf(result)).toEqual([{ name: 'get_time', params: timeParams }]);
      }
    });

    it(`${label}: an unknown function name falls back to the text as content`, () => {
      for (const seed of SEEDS) {
        const text = `Sure. ${section([call(wrapper, 'get_stock', weatherParams)])}`;
        const { result } = detect(wrapper, text, seed);
        expect(result.calls).toEqual([]);
        expect(result.content).toBe(text);
      }
    });

    it(`${label}: params that are not JSON fall back to the text as content`, () => {
      const good = call(wrapper, 'get_weather', weatherParams);
      const bad = good.replace('"Paris"', 'Paris');
      expect(bad).not.toBe(good);
      for (const seed of SEEDS) {
        const { result } = detect(wrapper, section([bad]), seed);
        expect(result.calls).toEqual([]);
        expect(result.content).toBe(section([bad]));
      }
    });

    it(`${label}: text that only starts like the call prefix is content`, () => {
      const start = callSyntaxOf(wrapper).starts[0] ?? '';
      for (const seed of SEEDS) {
        // Cut short at the end, and broken off in the middle.
        for (const text of [`Almost ${start.slice(0, -1)}`, `A ${start.slice(0, 3)}x and more`]) {
          const { result } = detect(wrapper, text, seed);
          expect(result).toEqual({ content: text, calls: [] });
        }
      }
    });
  }

  it('Qwen and Mistral (parallel syntax): two calls in a row are two tool calls', () => {
    const qwen = new QwenChatWrapper();
    const mistral = new MistralChatWrapper();
    const cases: Array<[ChatWrapper, string]> = [
      [qwen, `${call(qwen, 'get_weather', weatherParams)}\n${call(qwen, 'get_time', timeParams)}`],
      [
        mistral,
        `[TOOL_CALLS][${call(mistral, 'get_weather', weatherParams)}, ${call(mistral, 'get_time', timeParams)}]`,
      ],
    ];
    for (const [wrapper, text] of cases)
      for (const seed of SEEDS) {
        const { events, result } = detect(wrapper, text, seed);
        expect(result.content).toBeNull();
        expect(callsOf(result)).toEqual([
          { name: 'get_weather', params: weatherParams },
          { name: 'get_time', params: timeParams },
        ]);
        expect(events.filter((event) => event.type === 'call').map((event) => event.index)).toEqual([0, 1]);
        // parallel_tool_calls false: the first call only; what follows it is not read.
        const single = detect(wrapper, text, seed, false);
        expect(callsOf(single.result)).toEqual([{ name: 'get_weather', params: weatherParams }]);
      }
  });

  it('the call prefix split across pieces is still found, and never shown as content', () => {
    const wrapper = new ChatMLChatWrapper();
    const text = `Checking ${call(wrapper, 'get_weather', weatherParams)}`;
    // Every split point inside "||call: ".
    const at = text.indexOf('||call:');
    for (let cut = at; cut <= at + 8; cut++) {
      const detector = new ToolCallDetector(callSyntaxOf(wrapper), NAMES, true);
      const events = [
        ...detector.push(text.slice(0, cut)),
        ...detector.push(text.slice(cut)),
        ...detector.end(),
      ];
      const shown = events.flatMap((event) => (event.type === 'content' ? [event.text] : [])).join('');
      expect(shown).toBe('Checking ');
      expect(callsOf(detector.result())).toEqual([{ name: 'get_weather', params: weatherParams }]);
    }
  });

  it('a call cut short (max_tokens) keeps its name and partial arguments; cut in the name, it is text', () => {
    const wrapper = new ChatMLChatWrapper();
    const whole = call(wrapper, 'get_weather', weatherParams);
    const cut = detect(wrapper, whole.slice(0, whole.indexOf('"Paris"') + 3), 1);
    expect(cut.result.content).toBeNull();
    expect(cut.result.calls).toEqual([{ name: 'get_weather', arguments: '{"city": "Pa', complete: false }]);
    const early = whole.slice(0, whole.indexOf('weather'));
    expect(detect(wrapper, early, 1).result).toEqual({ content: early, calls: [] });
  });
});

// --- End to end, through the gateway, with the tiny model -------------------------------------

const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
  { role: 'user', content: 'weather in the city' },
];

let library: NodeLlamaCpp;

/** Prompt tokens of the question with `tools` as the model's template renders them. */
function renderedTokens(model: LlamaModel, tools: Tool[]): number {
  const functions: Record<string, { description?: string; params?: unknown }> = {};
  for (const tool of tools)
    functions[tool.function.name] = {
      description: tool.function.description,
      params: tool.function.parameters,
    };
  const history: ChatHistoryItem[] = [
    { type: 'user', text: 'weather in the city' },
    { type: 'model', response: [] },
  ];
  const state = library.resolveChatWrapper(model).generateContextState({
    chatHistory: history,
    availableFunctions: functions as ChatModelFunctions,
    documentFunctionParams: true,
  });
  return state.contextText.tokenize(model.tokenizer).length;
}

/** Every `data:` payload of an SSE body but `[DONE]`, which must end it. */
async function streamed(gw: TinyModelGateway, body: Record<string, unknown>): Promise<Chunk[]> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  expect(response.status).toBe(200);
  const events = (await response.text())
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
  expect(events.at(-1)).toBe('[DONE]');
  const chunks = events.slice(0, -1).map((event) => JSON.parse(event) as Chunk);
  for (const chunk of chunks) expectChatCompletionChunk(chunk);
  return chunks;
}

/** A gateway serving a tiny model, and the same file loaded apart as the reference. */
async function tinyGateway(options: { favouredToken?: string } = {}) {
  const path = writeTinyGguf('tiny', undefined, options);
  const gw = await startTinyModelGateway({ backend: { model: path, contextSize: 2048 } });
  await gw.backend.loaded;
  const runtime = await loadNodeLlamaCpp(gw.app.log);
  library = runtime.library;
  const reference = await runtime.llama.loadModel({ modelPath: path });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  return { gw, reference, client };
}

describe('auto through the gateway, with the tiny model (which cannot write a call)', () => {
  let setup: Awaited<ReturnType<typeof tinyGateway>>;
  beforeAll(async () => {
    setup = await tinyGateway();
  });
  afterAll(async () => {
    await setup?.reference.dispose();
    await setup?.gw.close();
  });

  it('answers text, the tools in the prompt, usage exact; streamed the same', async () => {
    const { client, gw, reference } = setup;
    const request = { model: 'tiny', messages, tools: [weather, clock], max_tokens: 12, temperature: 0 };
    const completion = await client.chat.completions.create(request);
    expectChatCompletion(completion);
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('length');
    expect(choice?.message.tool_calls).toBeUndefined();
    expect(typeof choice?.message.content).toBe('string');
    expect((choice?.message.content ?? '').length).toBeGreaterThan(0);
    expect(completion.usage?.prompt_tokens).toBe(renderedTokens(reference, [weather, clock]));
    expect(completion.usage?.completion_tokens).toBe(12);
    expect(completion.usage?.total_tokens).toBe((completion.usage?.prompt_tokens ?? 0) + 12);

    const chunks = await streamed(gw, request);
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(choice?.message.content);
    expect(chunks.some((chunk) => chunk.choices[0]?.delta.tool_calls !== undefined)).toBe(false);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('length');
    expect(chunks.at(-1)?.usage).toEqual(completion.usage);
  });
});

describe('auto through the gateway, with a tiny model that always starts a call', () => {
  let setup: Awaited<ReturnType<typeof tinyGateway>>;
  beforeAll(async () => {
    // "||call:" is the generic syntax's call prefix (ChatML has no call syntax of its own): the
    // model writes it first, and the grammar then holds it to a tool's name and parameters.
    setup = await tinyGateway({ favouredToken: '||call:' });
  });
  afterAll(async () => {
    await setup?.reference.dispose();
    await setup?.gw.close();
  });

  const request = { model: 'tiny', messages, tools: [weather, clock], max_tokens: 200, temperature: 0 };

  it("holds the name to the tools' names and params prefix, for every call syntax", async () => {
    const { llama } = await loadNodeLlamaCpp(setup.gw.app.log);
    const wrappers = [
      new ChatMLChatWrapper(),
      new Llama3_1ChatWrapper(),
      new QwenChatWrapper(),
      new MistralChatWrapper(),
      new SeedChatWrapper(),
      new Gemma4ChatWrapper(),
      new DeepSeekChatWrapper(),
    ];
    const gbnf: string[] = [];
    for (const wrapper of wrappers) {
      const syntax = callSyntaxOf(wrapper);
      const steer = new ToolCallSteer(
        syntax,
        new Map(NAMES.map((name) => [name, undefined])),
        true,
        {
          fromGbnf: (text) => {
            gbnf.push(text);
            return llama.createGrammar({ grammar: text });
          },
          state: (grammar) => new library.LlamaGrammarEvaluationState({ model: setup.reference, grammar }),
        },
        false,
      );
      expect(await steer.push(`Hi ${syntax.starts[0]}`)).toBe(false);
      // The grammar text parsed: llama.cpp refuses a malformed one, and the steer then has none.
      expect(steer.grammar()).toBeDefined();
      expect(gbnf.at(-1)).toContain(JSON.stringify(`get_time${syntax.paramsPrefix('get_time')}`));
    }
  });

  it('answers a parsed tool call: content null, arguments fitting the schema, exact usage', async () => {
    const { client, reference } = setup;
    const completion = await client.chat.completions.create(request);
    expectChatCompletion(completion);
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    expect(choice?.message.tool_calls).toHaveLength(1);
    const toolCall = choice?.message.tool_calls?.[0];
    if (toolCall?.type !== 'function') throw new Error('expected a function tool call');
    expect(toolCall.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    expect(NAMES).toContain(toolCall.function.name);
    expect(fitsTool[toolCall.function.name]?.(JSON.parse(toolCall.function.arguments))).toBe(true);
    expect(completion.usage?.prompt_tokens).toBe(renderedTokens(reference, [weather, clock]));
    const generated = completion.usage?.completion_tokens ?? 0;
    expect(generated).toBeGreaterThan(2);

    // One token fewer and the call is not whole: the count is the tokens generated.
    const cut = await client.chat.completions.create({ ...request, max_tokens: generated - 1 });
    expectChatCompletion(cut);
    expect(cut.choices[0]?.finish_reason).toBe('length');
    expect(cut.usage?.completion_tokens).toBe(generated - 1);
    const partial = cut.choices[0]?.message.tool_calls?.[0];
    if (partial?.type !== 'function') throw new Error('expected the partial call');
    expect(partial.function.name).toBe(toolCall.function.name);
    expect(toolCall.function.arguments.startsWith(partial.function.arguments)).toBe(true);
    expect(partial.function.arguments.length).toBeLessThan(toolCall.function.arguments.length);

    // Only the prefix generated: nothing tells a call yet, so it is the text.
    const first = await client.chat.completions.create({ ...request, max_tokens: 1 });
    expectChatCompletion(first);
    expect(first.choices[0]?.message.content).toBe('||call:');
    expect(first.choices[0]?.message.tool_calls).toBeUndefined();
    expect(first.choices[0]?.finish_reason).toBe('length');
    expect(first.usage?.completion_tokens).toBe(1);
  });

  it('streams the call as OpenAI does: id and name first, then arguments, finish, usage', async () => {
    const { client, gw } = setup;
    const whole = await client.chat.completions.create(request);
    const wholeCall = whole.choices[0]?.message.tool_calls?.[0];
    if (wholeCall?.type !== 'function') throw new Error('expected a function tool call');
    const chunks = await streamed(gw, request);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: 'assistant', content: null });
    const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
    expect(deltas[0]).toMatchObject({
      index: 0,
      type: 'function',
      function: { name: wholeCall.function.name, arguments: '' },
    });
    expect(deltas[0]?.id).toMatch(/^call_/);
    for (const delta of deltas.slice(1)) {
      expect(delta.index).toBe(0);
      expect(Object.keys(delta.function ?? {})).toEqual(['arguments']);
    }
    expect(deltas.map((delta) => delta.function?.arguments ?? '').join('')).toBe(
      wholeCall.function.arguments,
    );
    expect(chunks.some((chunk) => (chunk.choices[0]?.delta.content ?? '') !== '')).toBe(false);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)?.choices).toEqual([]);
    expect(chunks.at(-1)?.usage).toEqual(whole.usage);

    const final = await client.chat.completions.stream(request).finalChatCompletion();
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    const assembled = final.choices[0]?.message.tool_calls?.[0];
    if (assembled?.type !== 'function') throw new Error('expected the assembled call');
    expect(assembled.function).toEqual({
      name: wholeCall.function.name,
      arguments: wholeCall.function.arguments,
    });
  });

  it("tool_choice 'none' leaves the prefix as text, as before", async () => {
    const { client } = setup;
    const completion = await client.chat.completions.create({
      ...request,
      tool_choice: 'none',
      max_tokens: 3,
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.message.content).toBe('||call:||call:||call:');
    expect(completion.choices[0]?.message.tool_calls).toBeUndefined();
    expect(completion.usage?.completion_tokens).toBe(3);
  });
});
