import type { ServerResponse } from 'node:http';
import type OpenAI from 'openai';
import { FakeUpstream, openaiError, sendJson, sendSse } from './fake-upstream.js';
import type { Gate } from './gate.js';
import { chatChunkFixtures, chatCompletionFixture, toolCallChunkFixtures } from './openai-fixtures.js';
import { Tally } from './tally.js';

/**
 * What the response-cache suites share: an upstream whose timing and failures a test steers, a
 * cacheable question, and SDK calls that also return the `x-tollgate-cache` and `age` headers.
 */
export interface UpstreamControl {
  /**
   * While set and not open, chat answers are held back: a JSON answer (or the failure asked for)
   * until it opens, a stream after its first chunks (the role and HELD_STREAM_TEXT). The test
   * then knows what is out and what is not, instead of guessing from delays.
   */
  hold: Gate | undefined;
  /** Chat requests that reached the upstream (counted as they arrive, before any hold). */
  received: Tally;
  /** Milliseconds before answering (widens the window in which requests coalesce). */
  delayMs: number;
  /** Milliseconds between stream chunks. */
  chunkDelayMs: number;
  /** Answer the next chat request with a 500. */
  failNext: boolean;
  /**
   * Answer the next request (chat or embeddings) with a 200 that is no answer: an error object
   * (some upstreams do that), JSON cut short, or JSON with an error event part way (streams).
   */
  oddNext: 'error-200' | 'cut-json' | 'error-event' | undefined;
}

export const defaultControl = (): UpstreamControl => ({
  hold: undefined,
  received: new Tally(),
  delayMs: 0,
  chunkDelayMs: 5,
  failNext: false,
  oddNext: undefined,
});

/** The odd 200 `control` asks for, once; false when none was asked for. */
function sendOdd(control: UpstreamControl, res: ServerResponse, stream: boolean): boolean {
  const odd = control.oddNext;
  if (odd === undefined) return false;
  control.oddNext = undefined;
  if (odd === 'error-event' && stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = chatChunkFixtures('gpt-4o-mini', ['Hel'], false)[0];
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    res.end(`data: ${JSON.stringify(openaiError('overloaded part way', 'server_error'))}\n\n`);
    return true;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    odd === 'cut-json'
      ? '{"id": "x", "choices": ['
      : JSON.stringify(openaiError('overloaded', 'server_error')),
  );
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The text a held stream has sent (after its role chunk) when it stops at the hold. */
export const HELD_STREAM_TEXT = 'Hel';
/** Its chunks out before the hold: the role chunk and the one with HELD_STREAM_TEXT. */
const CHUNKS_BEFORE_HOLD = 2;

/** Like sendSse, stopping after the first chunks until `hold` opens. */
async function sendHeldSse(res: ServerResponse, chunks: unknown[], hold: Gate): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const [index, chunk] of chunks.entries()) {
    if (index === CHUNKS_BEFORE_HOLD) await hold.opened;
    // The gateway may have hung up meanwhile (its client left).
    if (res.destroyed) return;
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }
  res.end('data: [DONE]\n\n');
}

/** Chat: 'Hello #<i>' per choice (JSON), 'Hel' 'lo' ' #0' (streams), a tool call when asked for tools; embeddings. */
export function cacheTestUpstream(control: UpstreamControl): FakeUpstream {
  return new FakeUpstream()
    .on('POST', '/v1/chat/completions', async (request, res) => {
      const body = request.json ?? {};
      control.received.add();
      if (control.delayMs) await sleep(control.delayMs);
      const hold = control.hold;
      if (hold && (!body.stream || control.failNext)) await hold.opened;
      if (control.failNext) {
        control.failNext = false;
        return sendJson(res, 500, openaiError('boom', 'server_error'));
      }
      if (sendOdd(control, res, body.stream === true)) return;
      const model = String(body.model);
      if (!body.stream) return sendJson(res, 200, chatCompletionFixture(model, 'Hello', Number(body.n ?? 1)));
      const usage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      if (body.tools) return sendSse(res, toolCallChunkFixtures(model), { delayMs: 5 });
      const chunks = chatChunkFixtures(model, [HELD_STREAM_TEXT, 'lo', ' #0'], usage);
      if (hold) return sendHeldSse(res, chunks, hold);
      return sendSse(res, chunks, { delayMs: control.chunkDelayMs });
    })
    .on('POST', '/v1/embeddings', (request, res) => {
      if (sendOdd(control, res, false)) return;
      const input = request.json?.input;
      const items = Array.isArray(input) ? input : [input];
      sendJson(res, 200, {
        object: 'list',
        model: 'emb',
        data: items.map((_, index) => ({ object: 'embedding', index, embedding: [index, 0.5, -0.25] })),
        usage: { prompt_tokens: items.length, total_tokens: items.length },
      });
    });
}

/** Deterministic (temperature 0), so cacheable once the cache is on. */
export const CACHEABLE_ASK = {
  model: 'gpt-4o-mini',
  temperature: 0,
  messages: [{ role: 'user' as const, content: 'Say hello' }],
};

export async function chatWithCache(
  client: OpenAI,
  body: Record<string, unknown> = CACHEABLE_ASK,
  headers: Record<string, string> = {},
) {
  const { data, response } = await client.chat.completions
    .create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming, { headers })
    .withResponse();
  return {
    data,
    text: data.choices[0]?.message.content ?? '',
    cache: response.headers.get('x-tollgate-cache'),
    age: response.headers.get('age'),
  };
}

export async function streamWithCache(
  client: OpenAI,
  body: Record<string, unknown> = CACHEABLE_ASK,
  headers: Record<string, string> = {},
) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...body, stream: true } as unknown as OpenAI.ChatCompletionCreateParamsStreaming, { headers })
    .withResponse();
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  return { chunks, text, cache: response.headers.get('x-tollgate-cache'), age: response.headers.get('age') };
}
