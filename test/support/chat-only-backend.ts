import type { Backend, BackendCall, BackendResponse, Endpoint } from '../../src/backends/backend.js';
import { MockBackend } from '../../src/backends/mock/mock-backend.js';
import { OpenAICompatibleBackend } from '../../src/backends/openai-compatible/openai-compatible-backend.js';
import { parseConfig } from '../../src/config/load-config.js';
import type { BackendConfig } from '../../src/config/schema.js';
import { EndpointNotSupportedError } from '../../src/errors.js';
import { FakeUpstream, sendJson, sendSse } from './fake-upstream.js';

/**
 * A backend that speaks chat completions and not the Responses API, as an in-process model, a
 * user module or a local server without `/v1/responses` does: it hides the endpoint of a real
 * backend (the mock, or the OpenAI-compatible adapter in front of a fake chat-only upstream).
 */
export class ChatOnlyBackend implements Backend {
  readonly name: string;
  readonly type: string;
  /** Every call the gateway made, as it made it (the translation's chat requests among them). */
  readonly calls: BackendCall[] = [];

  constructor(private readonly inner: Backend) {
    this.name = inner.name;
    this.type = inner.type;
  }

  supports(endpoint: Endpoint): boolean {
    return endpoint !== 'responses' && this.inner.supports(endpoint);
  }

  send(call: BackendCall): Promise<BackendResponse> {
    this.calls.push(call);
    if (!this.supports(call.endpoint)) throw new EndpointNotSupportedError(call.endpoint, call.model);
    return this.inner.send(call);
  }

  listModels(signal: AbortSignal): Promise<string[]> {
    return this.inner.listModels(signal);
  }

  checkHealth(signal: AbortSignal): Promise<void> {
    return this.inner.checkHealth(signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function backendConfig<T extends BackendConfig['type']>(input: Record<string, unknown>) {
  const config = parseConfig({ backends: { b: input }, models: {} }, {}, 'test');
  return config.backends.b as Extract<BackendConfig, { type: T }>;
}

/** The mock model (echoes the last user message, calls the first tool), chat only. */
export function chatOnlyMock(name: string, chunks = 3): ChatOnlyBackend {
  return new ChatOnlyBackend(new MockBackend(name, backendConfig<'mock'>({ type: 'mock', chunks })));
}

/** The OpenAI-compatible adapter in front of `baseUrl` (a FakeUpstream), chat only. */
export function chatOnlyUpstream(name: string, baseUrl: string): ChatOnlyBackend {
  return new ChatOnlyBackend(
    new OpenAICompatibleBackend(name, backendConfig<'openai'>({ type: 'openai', baseUrl: `${baseUrl}/v1` })),
  );
}

/** The usage every answer of the scripted chat upstream reports, details included. */
export const CHAT_USAGE = {
  prompt_tokens: 42,
  completion_tokens: 7,
  total_tokens: 49,
  prompt_tokens_details: { cached_tokens: 5, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 2, audio_tokens: 0 },
};

export const WEATHER_ARGUMENTS = '{"city":"Paris"}';
export const WEATHER_ANSWER = 'It is sunny in Paris.';
export const JSON_ANSWER = '{"city":"Paris","temperature":21}';
export const TRUNCATED_ANSWER = 'Once upon a';
export const PLAIN_ANSWER = 'Hello from a chat-only backend.';

type Json = Record<string, unknown>;

interface ScriptedAnswer {
  content: string | null;
  toolCalls: Array<{ id: string; name: string; arguments: string }>;
  finish: 'stop' | 'length' | 'tool_calls';
  /** Sent as the stream's only event, after a 200 (as vLLM and others do). */
  error?: Json;
}

/** A prompt holding this gets IN_BAND_ERROR as its stream. */
export const IN_BAND_ERROR_PROMPT = 'in-band-error';
export const IN_BAND_ERROR = {
  message: 'This prompt is longer than the context window.',
  type: 'invalid_request_error',
  param: 'messages',
  code: 'context_length_exceeded',
};

/**
 * What the scripted upstream answers, read from the chat request the translation made: a tool's
 * result gets the final text; tools get a call to the first of them (two calls when the prompt
 * says "both"); a JSON schema gets JSON; `max_tokens` gets a cut-off text; anything else a greeting.
 */
function answerFor(body: Json): ScriptedAnswer {
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const last = messages.at(-1);
  const tools = Array.isArray(body.tools) ? (body.tools as Array<{ function: { name: string } }>) : [];
  if (last?.role === 'tool') return { content: WEATHER_ANSWER, toolCalls: [], finish: 'stop' };
  if (JSON.stringify(last?.content ?? '').includes(IN_BAND_ERROR_PROMPT))
    return { content: null, toolCalls: [], finish: 'stop', error: IN_BAND_ERROR };
  if (tools.length > 0 && body.tool_choice !== 'none') {
    const name = tools[0]?.function.name ?? 'tool';
    const both = JSON.stringify(last?.content ?? '').includes('both');
    const toolCalls = [{ id: 'call_one', name, arguments: WEATHER_ARGUMENTS }];
    if (both) toolCalls.push({ id: 'call_two', name, arguments: '{"city":"Rome"}' });
    return { content: null, toolCalls, finish: 'tool_calls' };
  }
  const format = body.response_format as { type?: string } | undefined;
  if (format?.type === 'json_schema') return { content: JSON_ANSWER, toolCalls: [], finish: 'stop' };
  if (typeof body.max_tokens === 'number')
    return { content: TRUNCATED_ANSWER, toolCalls: [], finish: 'length' };
  return { content: PLAIN_ANSWER, toolCalls: [], finish: 'stop' };
}

function pieces(text: string, count: number): string[] {
  const size = Math.ceil(text.length / count);
  const out: string[] = [];
  for (let at = 0; at < text.length; at += size) out.push(text.slice(at, at + size));
  return out;
}

/** The chunks OpenAI would stream for `answer`: arguments of parallel calls interleaved. */
function chunksOf(answer: ScriptedAnswer, model: string, includeUsage: boolean): Json[] {
  const base = { id: 'chatcmpl-scripted', object: 'chat.completion.chunk', created: 1_700_000_000, model };
  const chunk = (delta: Json, finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const out: Json[] = [chunk({ role: 'assistant', content: answer.content === null ? null : '' })];
  if (answer.content !== null)
    for (const piece of pieces(answer.content, 3)) out.push(chunk({ content: piece }));
  answer.toolCalls.forEach((call, index) => {
    out.push(
      chunk({
        tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }],
      }),
    );
  });
  const split = answer.toolCalls.map((call) => pieces(call.arguments, 3));
  for (let piece = 0; piece < 3; piece++)
    split.forEach((parts, index) => {
      const part = parts[piece];
      if (part) out.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }));
    });
  out.push(chunk({}, answer.finish));
  if (includeUsage) out.push({ ...base, choices: [], usage: CHAT_USAGE });
  return out;
}

/**
 * A real HTTP server with only `POST /v1/chat/completions`, answering as `answerFor` says with
 * CHAT_USAGE: the upstream of a local server that lacks `/v1/responses`.
 */
export function scriptedChatUpstream(): FakeUpstream {
  return new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
    const body = request.json ?? {};
    const model = String(body.model);
    const answer = answerFor(body);
    if (body.stream === true) {
      if (answer.error) return sendSse(res, [{ error: answer.error }], { done: false });
      const options = body.stream_options as { include_usage?: boolean } | undefined;
      return sendSse(res, chunksOf(answer, model, options?.include_usage === true));
    }
    sendJson(res, 200, {
      id: 'chatcmpl-scripted',
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: answer.content,
            refusal: null,
            ...(answer.toolCalls.length > 0
              ? {
                  tool_calls: answer.toolCalls.map((call) => ({
                    id: call.id,
                    type: 'function',
                    function: { name: call.name, arguments: call.arguments },
                  })),
                }
              : {}),
          },
          logprobs: null,
          finish_reason: answer.finish,
        },
      ],
      usage: CHAT_USAGE,
    });
  });
}
