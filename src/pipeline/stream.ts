import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse } from '../backends/backend.js';
import { ClientAbortedError } from '../backends/openai-compatible/upstream-failure.js';
import { UpstreamError } from '../errors.js';
import { processingMs } from '../http/request-context.js';
import { SseSplitter, splitEvents } from '../http/sse-splitter.js';
import { errorEvent } from '../plugins/error-handler.js';
import { eventData, hasUsageObject, usageOf } from './usage.js';

/** ⑥ stream: a backend response, relayed to the client as SSE, JSON or raw bytes. */
export interface RelayOptions {
  keepAliveMs: number;
  bodyLimit: number;
}

export interface SseOptions extends RelayOptions {
  /** Drop the usage-only chunk (`choices: []`): the gateway asked for it, the client did not. */
  stripUsageChunk: boolean;
  /** Sees every block of complete events as the upstream sent it, before anything is stripped. */
  tee?: ((block: Buffer) => void) | undefined;
  /**
   * Asked when the client has gone: true to keep reading the upstream anyway (others follow this
   * stream through `tee`), writing nothing more.
   */
  readOnWithoutClient?: (() => boolean) | undefined;
}

const PING = Buffer.from(': ping\n\n');

export function isEventStream(response: BackendResponse): boolean {
  return response.contentType.startsWith('text/event-stream');
}

/**
 * Finds usage in a block of complete events and, when asked, removes the usage-only event.
 * Only blocks that hold a `"usage": {` are parsed; all other bytes pass untouched.
 */
function inspectBlock(block: Buffer, request: FastifyRequest, strip: boolean): Buffer {
  if (!hasUsageObject(block)) return block;
  const kept: Buffer[] = [];
  for (const event of splitEvents(block)) {
    if (!hasUsageObject(event)) {
      kept.push(event);
      continue;
    }
    const payload = eventData(event);
    const usage = payload ? usageOf(payload) : undefined;
    if (usage) request.gateway.usage = usage;
    const usageOnly = Array.isArray(payload?.choices) && (payload.choices as unknown[]).length === 0;
    if (!(strip && usage && usageOnly)) kept.push(event);
  }
  return kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept);
}

/**
 * Writes SSE as it arrives, honouring backpressure, with `: ping` comments through long
 * silences. A failure after the 200 becomes one `data: {"error":...}` event, then the end.
 */
export async function relaySse(
  request: FastifyRequest,
  reply: FastifyReply,
  response: BackendResponse,
  options: SseOptions,
): Promise<void> {
  const raw = reply.raw;
  const signal = request.gateway.abort.signal;
  reply.hijack();
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) headers[name] = value;
  raw.writeHead(response.status, {
    ...headers,
    ...response.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // Tells nginx-style proxies in front of us not to buffer the stream.
    'x-accel-buffering': 'no',
    'openai-processing-ms': processingMs(request),
  });
  raw.flushHeaders();
  let lastWrite = Date.now();
  const keepAlive = setInterval(
    () => {
      if (Date.now() - lastWrite >= options.keepAliveMs && !raw.destroyed) {
        raw.write(PING);
        lastWrite = Date.now();
      }
    },
    Math.max(Math.floor(options.keepAliveMs / 2), 5),
  );
  const splitter = new SseSplitter();
  try {
    for await (const chunk of response.body) {
      const block = splitter.push(chunk);
      if (!block) continue;
      options.tee?.(block);
      const out = inspectBlock(block, request, options.stripUsageChunk);
      if (signal.aborted) {
        if (options.readOnWithoutClient?.()) continue;
        break;
      }
      if (out.length === 0) continue;
      request.gateway.firstChunkAt ??= performance.now();
      request.gateway.tally?.add(out);
      lastWrite = Date.now();
      if (!raw.write(out)) {
        try {
          await once(raw, 'drain', { signal });
        } catch (error) {
          if (!signal.aborted || !options.readOnWithoutClient?.()) throw error;
        }
      }
    }
    const rest = splitter.rest();
    if (rest) {
      options.tee?.(rest);
      raw.write(rest);
    }
  } catch (error) {
    if (!signal.aborted && !(error instanceof ClientAbortedError) && !raw.destroyed) {
      request.gateway.streamError = true;
      request.log.warn(
        { error: { message: (error as Error).message } },
        'stream failed after the response started',
      );
      raw.write(errorEvent(error, options.bodyLimit));
    }
  } finally {
    clearInterval(keepAlive);
    if (!raw.destroyed) raw.end();
  }
}

/** Reads a whole JSON answer, up to `limit` bytes; callers may inspect it before it goes out. */
export async function collectBody(response: BackendResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > limit) throw new UpstreamError(`The upstream's answer is larger than ${limit} bytes.`);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

export function sendBuffered(reply: FastifyReply, response: BackendResponse, body: Buffer): FastifyReply {
  return reply.code(response.status).headers(response.headers).type(response.contentType).send(body);
}

/** Audio and other binary answers: streamed through, never held whole. */
export function sendStreamed(reply: FastifyReply, response: BackendResponse): FastifyReply {
  return reply
    .code(response.status)
    .headers(response.headers)
    .type(response.contentType)
    .send(Readable.from(response.body, { objectMode: false }));
}
