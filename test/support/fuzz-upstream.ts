import type { ServerResponse } from 'node:http';
import { FakeUpstream, type RecordedRequest, sendJson, sendSse } from './fake-upstream.js';
import { chatChunkFixtures, chatCompletionFixture } from './openai-fixtures.js';

/** How the fuzz upstream streams: the real-HTTP part slows streams down so aborts land mid-way. */
export interface FuzzUpstreamControl {
  streamPieces: number;
  chunkDelayMs: number;
}

/** Choices the client asked for, within what a well-behaved upstream would send. */
function choiceCount(body: Record<string, unknown> | undefined): number {
  const n = body?.n;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 128 ? n : 1;
}

/** Items of an embeddings or moderations `input`: a token array is one item, a list is many. */
function itemCount(input: unknown): number {
  if (!Array.isArray(input)) return 1;
  if (input.length === 0) return 0;
  if (input.every((item) => typeof item === 'number')) return 1;
  return input.length;
}

function completionFixture(model: string, n: number) {
  return {
    id: 'cmpl-fuzz',
    object: 'text_completion',
    created: 1_700_000_000,
    model,
    choices: Array.from({ length: n }, (_, index) => ({
      index,
      text: 'ok',
      logprobs: null,
      finish_reason: 'stop',
    })),
    usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  };
}

function responseFixture(model: string) {
  return {
    id: 'resp_fuzz',
    object: 'response',
    created_at: 1_700_000_000,
    status: 'completed',
    model,
    output: [
      {
        type: 'message',
        id: 'msg_fuzz',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'ok', annotations: [] }],
      },
    ],
    usage: { input_tokens: 12, output_tokens: 5, total_tokens: 17 },
  };
}

async function chat(request: RecordedRequest, res: ServerResponse, control: FuzzUpstreamControl) {
  const body = request.json;
  const model = String(body?.model ?? 'upstream-gpt');
  if (body?.stream === true) {
    const pieces = Array.from({ length: control.streamPieces }, (_, i) => `p${i} `);
    const include = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    return sendSse(res, chatChunkFixtures(model, pieces, include), { delayMs: control.chunkDelayMs });
  }
  sendJson(res, 200, chatCompletionFixture(model, 'ok', choiceCount(body)));
}

async function completions(request: RecordedRequest, res: ServerResponse, control: FuzzUpstreamControl) {
  const body = request.json;
  const model = String(body?.model ?? 'upstream-gpt');
  if (body?.stream === true) {
    const base = { id: 'cmpl-fuzz', object: 'text_completion', created: 1_700_000_000, model };
    const chunks: unknown[] = Array.from({ length: control.streamPieces }, (_, i) => ({
      ...base,
      choices: [{ index: 0, text: `p${i} `, logprobs: null, finish_reason: null }],
    }));
    chunks.push({ ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'stop' }] });
    chunks.push({
      ...base,
      choices: [],
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
    });
    return sendSse(res, chunks, { delayMs: control.chunkDelayMs });
  }
  sendJson(res, 200, completionFixture(model, choiceCount(body)));
}

async function responses(request: RecordedRequest, res: ServerResponse, control: FuzzUpstreamControl) {
  const model = String(request.json?.model ?? 'upstream-gpt');
  if (request.json?.stream !== true) return sendJson(res, 200, responseFixture(model));
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const event = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  res.write(
    event('response.created', { response: { ...responseFixture(model), status: 'in_progress', output: [] } }),
  );
  for (let i = 0; i < control.streamPieces; i++) {
    if (res.destroyed) return;
    res.write(
      event('response.output_text.delta', {
        item_id: 'msg_fuzz',
        output_index: 0,
        content_index: 0,
        delta: `p${i} `,
      }),
    );
    if (control.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, control.chunkDelayMs));
  }
  res.write(event('response.completed', { response: responseFixture(model) }));
  res.end();
}

function embeddings(request: RecordedRequest, res: ServerResponse) {
  const body = request.json;
  const base64 = body?.encoding_format === 'base64';
  const vector = [0.25, -0.5, 0.125, 1];
  const encoded = Buffer.from(new Float32Array(vector).buffer).toString('base64');
  sendJson(res, 200, {
    object: 'list',
    data: Array.from({ length: itemCount(body?.input) }, (_, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? encoded : vector,
    })),
    model: String(body?.model ?? 'upstream-gpt'),
    usage: { prompt_tokens: 3, total_tokens: 3 },
  });
}

function moderations(request: RecordedRequest, res: ServerResponse) {
  sendJson(res, 200, {
    id: 'modr-fuzz',
    model: String(request.json?.model ?? 'omni-moderation-latest'),
    results: Array.from({ length: Math.max(1, itemCount(request.json?.input)) }, () => ({
      flagged: false,
      categories: {},
      category_scores: {},
    })),
  });
}

/**
 * A real OpenAI-compatible upstream on 127.0.0.1 answering every endpoint the gateway relays,
 * at the OpenAI paths and at an Azure deployment's (`dep-a`). It answers well-formed 200s only,
 * so any 5xx the gateway gives is the gateway's own.
 */
export function fuzzUpstream(control: FuzzUpstreamControl): FakeUpstream {
  const upstream = new FakeUpstream();
  const prefixes = ['/v1', '/openai/deployments/dep-a'];
  for (const prefix of prefixes) {
    upstream
      .on('POST', `${prefix}/chat/completions`, (request, res) => chat(request, res, control))
      .on('POST', `${prefix}/completions`, (request, res) => completions(request, res, control))
      .on('POST', `${prefix}/responses`, (request, res) => responses(request, res, control))
      .on('POST', `${prefix}/embeddings`, embeddings)
      .on('POST', `${prefix}/moderations`, moderations)
      .on('POST', `${prefix}/images/generations`, (_request, res) =>
        sendJson(res, 200, { created: 1_700_000_000, data: [{ url: 'https://example.com/fuzz.png' }] }),
      )
      .on('POST', `${prefix}/audio/speech`, (_request, res) => {
        res.writeHead(200, { 'content-type': 'audio/mpeg' });
        res.end(Buffer.from('ID3fuzz-audio'));
      })
      .on('POST', `${prefix}/audio/transcriptions`, (_request, res) => sendJson(res, 200, { text: 'fuzz' }))
      .on('POST', `${prefix}/audio/translations`, (_request, res) => sendJson(res, 200, { text: 'fuzz' }));
  }
  upstream.on('GET', '/v1/models', (_request, res) =>
    sendJson(res, 200, {
      object: 'list',
      data: ['upstream-gpt', 'model-a', 'listed'].map((id) => ({
        id,
        object: 'model',
        created: 1,
        owned_by: 'fuzz',
      })),
    }),
  );
  return upstream;
}
