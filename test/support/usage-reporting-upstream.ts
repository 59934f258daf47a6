import type { ServerResponse } from 'node:http';
import {
  response as mockResponse,
  responseEvents as mockResponseEvents,
} from '../../src/backends/mock/mock-responses.js';
import { FakeUpstream, type RecordedRequest, sendJson, sendSse } from './fake-upstream.js';

/**
 * An OpenAI-compatible upstream for usage conformance tests: chat, legacy completions, the
 * Responses API and embeddings, JSON and streamed, each reporting usage numbers no gateway
 * default could produce (prompt 11, completion 7, cached 3, reasoning 2), so a test can tell
 * the upstream's figures from the gateway's own count. An upstream model whose name starts
 * with `silent` reports no usage at all: no `usage` in JSON, and no usage chunk on streams
 * whatever `stream_options` asks (as some OpenAI-compatible servers do).
 *
 * It answers at OpenAI's paths (`/v1/...`, which the local-server presets use too, with
 * `GET /v1/models` for their discovery) and at Azure's (`/openai/deployments/<model>/...`).
 */

/** Chat and legacy completions usage, details included. */
export const REPORTED_USAGE = {
  prompt_tokens: 11,
  completion_tokens: 7,
  total_tokens: 18,
  prompt_tokens_details: { cached_tokens: 3, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 2,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};

/** The same figures in the Responses API's names. */
export const REPORTED_RESPONSE_USAGE = {
  input_tokens: 11,
  input_tokens_details: { cached_tokens: 3 },
  output_tokens: 7,
  output_tokens_details: { reasoning_tokens: 2 },
  total_tokens: 18,
};

export const REPORTED_EMBEDDING_USAGE = { prompt_tokens: 11, total_tokens: 11 };

/** What every chat and legacy completion answers, and the pieces a stream sends it in. */
export const ANSWER_PIECES = ['Usage', ' comes', ' from', ' the', ' upstream.'];
export const ANSWER_TEXT = ANSWER_PIECES.join('');

/** The upstream model names it knows (Azure deployments among them). */
export const REPORTING_MODEL = 'gpt-usage';
export const SILENT_MODEL = 'silent-usage';

type Json = Record<string, unknown>;

function reports(body: Json): boolean {
  return !String(body.model ?? '').startsWith('silent');
}

function wantsUsageChunk(body: Json): boolean {
  const options = body.stream_options as { include_usage?: unknown } | null | undefined;
  return reports(body) && options?.include_usage === true;
}

function chat(request: RecordedRequest, res: ServerResponse): void | Promise<void> {
  const body = request.json ?? {};
  const base = { id: 'chatcmpl-usage', created: 1_700_000_000, model: String(body.model) };
  if (body.stream !== true) {
    return sendJson(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: ANSWER_TEXT, refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      ...(reports(body) ? { usage: REPORTED_USAGE } : {}),
    });
  }
  const chunk = { ...base, object: 'chat.completion.chunk' };
  const delta = (content: string) => ({
    ...chunk,
    choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }],
  });
  return sendSse(res, [
    {
      ...chunk,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    },
    ...ANSWER_PIECES.map(delta),
    { ...chunk, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] },
    ...(wantsUsageChunk(body) ? [{ ...chunk, choices: [], usage: REPORTED_USAGE }] : []),
  ]);
}

function completions(request: RecordedRequest, res: ServerResponse): void | Promise<void> {
  const body = request.json ?? {};
  const base = {
    id: 'cmpl-usage',
    object: 'text_completion',
    created: 1_700_000_000,
    model: String(body.model),
  };
  if (body.stream !== true) {
    return sendJson(res, 200, {
      ...base,
      choices: [{ index: 0, text: ANSWER_TEXT, logprobs: null, finish_reason: 'stop' }],
      ...(reports(body) ? { usage: REPORTED_USAGE } : {}),
    });
  }
  return sendSse(res, [
    ...ANSWER_PIECES.map((text, i) => ({
      ...base,
      choices: [
        { index: 0, text, logprobs: null, finish_reason: i === ANSWER_PIECES.length - 1 ? 'stop' : null },
      ],
    })),
    ...(wantsUsageChunk(body) ? [{ ...base, choices: [], usage: REPORTED_USAGE }] : []),
  ]);
}

/** The mock's spec-valid Response (it echoes the input), with this upstream's usage, or none. */
function responses(request: RecordedRequest, res: ServerResponse): void {
  const body = request.json ?? {};
  const options = { model: String(body.model), chunks: 3 };
  const usage = reports(body) ? REPORTED_RESPONSE_USAGE : null;
  if (body.stream !== true) {
    sendJson(res, 200, { ...mockResponse(body, options), usage });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const event of mockResponseEvents(body, options)) {
    const data = event.data as Json & { response?: Json };
    const patched =
      event.type === 'response.completed' && data.response
        ? { ...data, response: { ...data.response, usage } }
        : data;
    res.write(`event: ${event.type}\ndata: ${JSON.stringify(patched)}\n\n`);
  }
  res.end();
}

function embeddings(request: RecordedRequest, res: ServerResponse): void {
  const body = request.json ?? {};
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  sendJson(res, 200, {
    object: 'list',
    data: inputs.map((_input, index) => ({ object: 'embedding', index, embedding: [0.25, -0.5, 0.75] })),
    model: String(body.model),
    ...(reports(body) ? { usage: REPORTED_EMBEDDING_USAGE } : {}),
  });
}

/** Starts it; the base URL is `http://127.0.0.1:<port>` (OpenAI's base URL is that plus `/v1`). */
export async function startUsageReportingUpstream(): Promise<{ upstream: FakeUpstream; base: string }> {
  const upstream = new FakeUpstream();
  const prefixes = ['/v1', ...[REPORTING_MODEL, SILENT_MODEL].map((model) => `/openai/deployments/${model}`)];
  for (const prefix of prefixes) {
    upstream
      .on('POST', `${prefix}/chat/completions`, chat)
      .on('POST', `${prefix}/completions`, completions)
      .on('POST', `${prefix}/responses`, responses)
      .on('POST', `${prefix}/embeddings`, embeddings);
  }
  upstream.on('GET', '/v1/models', (_request, res) =>
    sendJson(res, 200, {
      object: 'list',
      data: [REPORTING_MODEL, SILENT_MODEL].map((id) => ({
        id,
        object: 'model',
        created: 1,
        owned_by: 'test',
      })),
    }),
  );
  return { upstream, base: await upstream.start() };
}
