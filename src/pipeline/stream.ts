import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse } from '../backends/backend.js';
import { SseSplitter, splitEvents } from '../backends/sse-splitter.js';
import { ClientAbortedError } from '../backends/transport-failure.js';
import { UpstreamAnswerTooLargeError, UpstreamError } from '../errors.js';
import { type StreamErrorSurface, surfaceErrorEvent } from '../http/error-surface.js';
import { processingMs } from '../http/request-context.js';
import { type StreamShutdown, shuttingDownError } from '../http/stream-shutdown.js';
import type { StreamTally } from '../usage/output-tally.js';
import { doneEventAt } from './closing-usage.js';
import { hasErrorEvent } from './in-band-error.js';
import { ResponsesSequence } from './responses-sequence.js';
import { eventData, hasUsageObject, type StreamUsage, type TokenUsage } from './usage.js';

/** ⑥ stream: a backend response, relayed to the client as SSE, JSON or raw bytes. */
export interface RelayOptions {
  keepAliveMs: number;
  bodyLimit: number;
  /** Shutdown's end of the grace period: a stream still relayed then ends with an error event. */
  shutdown?: StreamShutdown | undefined;
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
  /** Counts what was relayed, for a stream whose usage never arrives. */
  tally?: StreamTally | undefined;
  /** Where this stream's events carry usage (chat chunks, Responses events, Anthropic's). */
  usage: StreamUsage;
  /** Whose error event ends a stream that fails after the 200. */
  surface: StreamErrorSurface;
  /**
   * For a stream that ends whole without having carried usage: the usage event to send before
   * its `[DONE]` (or its end), or undefined for none. Asked at most once, after everything else
   * was relayed (and tallied).
   */
  closingUsage?: (() => Buffer | undefined) | undefined;
  /**
   * Ends the upstream request, for a stream that shutdown ended while a read was pending: the
   * client is still there (its abort ends nothing), and a generator's return() waits for that read.
   */
  abortUpstream?: (() => void) | undefined;
}

/** What relaying a stream found out, for ⑦ (settle, record) to use. */
export interface SseOutcome {
  /** The usage the stream reported, if it did. */
  usage: TokenUsage | undefined;
  /** True when the stream ended with an error event after the 200 went out. */
  streamError: boolean;
  /** performance.now() when the first event went to the client. */
  firstChunkAt: number | undefined;
}

/**
 * A stream read up to its first event, with nothing sent to the client yet. Built by
 * `readFirstEvent`; `relaySse` takes it from there.
 */
export interface StartedSse {
  status: number;
  headers: Record<string, string>;
  /**
   * Complete events read so far: the first `data:` event past the preamble (if one was given to
   * `readFirstEvent`), and any comments and preamble events before it.
   */
  head: Buffer | undefined;
  /** A read still outstanding when the wait for the first event ran out (then head has no event yet). */
  pending: Promise<IteratorResult<Buffer>> | undefined;
  splitter: SseSplitter;
  iterator: AsyncIterator<Buffer>;
}

const PING = Buffer.from(': ping\n\n');
const DATA_FIELD = Buffer.from('data:');

export function isEventStream(response: BackendResponse): boolean {
  return response.contentType.startsWith('text/event-stream');
}

function iteratorOf(body: BackendResponse['body']): AsyncIterator<Buffer> {
  if (Symbol.asyncIterator in body) return body[Symbol.asyncIterator]();
  const sync = body[Symbol.iterator]();
  return {
    next: async () => sync.next(),
    return: async (value?: unknown) => sync.return?.(value) ?? { done: true, value: undefined },
  };
}

/** True when a block of complete events holds a `data:` field (not only comments or names). */
function hasData(block: Buffer): boolean {
  for (let at = block.indexOf(DATA_FIELD); at !== -1; at = block.indexOf(DATA_FIELD, at + 1)) {
    if (at === 0 || block[at - 1] === 0x0a) return true;
  }
  return false;
}

/** Events that come before a stream's content and say nothing of how it goes (see readFirstEvent). */
export type PreambleEvent = (event: Buffer) => boolean;

/** True when a block holds an event to stop reading ahead at: a `data:` event past the preamble. */
function endsReadAhead(block: Buffer, preamble: PreambleEvent | undefined): boolean {
  if (!hasData(block)) return false;
  if (!preamble) return true;
  return splitEvents(block).some((event) => hasData(event) && !preamble(event));
}

/** Resolves with `read`'s result, or with undefined once `ms` have passed without one. */
function within<T>(read: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([read, timeout]).finally(() => clearTimeout(timer));
}

/**
 * ⑥ read ahead: reads the upstream's stream up to its first `data:` event before anything is
 * sent, so that an upstream that answers 200 and then fails, or ends, before that event is a
 * failure the client gets as a normal error response (and that could be retried), not a 200
 * with an error event. Bytes after the first event are not waited for. With a `preamble`, events
 * it takes (a Messages stream's `message_start` and `ping`: messages-preamble.ts) are held too,
 * and reading goes on to the first event past them.
 *
 * The wait is bounded by the keep-alive interval: an upstream still silent after it (a long
 * prompt, a slow model) gets the 200 and `: ping`s as it would without read-ahead, so neither
 * the client nor a proxy in between times out on an idle connection; a failure after that is an
 * error event, as for any failure after the 200.
 */
export async function readFirstEvent(
  response: BackendResponse,
  waitMs: number,
  preamble?: PreambleEvent,
): Promise<StartedSse> {
  const iterator = iteratorOf(response.body);
  const splitter = new SseSplitter();
  const held: Buffer[] = [];
  const started: StartedSse = {
    status: response.status,
    headers: response.headers,
    head: undefined,
    pending: undefined,
    splitter,
    iterator,
  };
  const deadline = performance.now() + waitMs;
  try {
    for (;;) {
      const read = iterator.next();
      const result = await within(read, deadline - performance.now());
      if (result === undefined) {
        started.pending = read;
        break;
      }
      if (result.done) {
        throw new UpstreamError(
          held.some(hasData)
            ? 'The upstream ended its stream before sending any content.'
            : 'The upstream ended its stream before sending any event.',
        );
      }
      const block = splitter.push(result.value);
      if (!block) continue;
      held.push(block);
      if (endsReadAhead(block, preamble)) break;
    }
  } catch (error) {
    await iterator.return?.().catch(() => {});
    throw error;
  }
  started.head = held.length === 0 ? undefined : held.length === 1 ? held[0] : Buffer.concat(held);
  return started;
}

/**
 * Finds usage in a block of complete events and, when asked, removes the usage-only event.
 * Only blocks that hold a `"usage": {` are parsed; all other bytes pass untouched.
 */
function inspectBlock(block: Buffer, outcome: SseOutcome, strip: boolean, reader: StreamUsage): Buffer {
  if (!hasUsageObject(block)) return block;
  const kept: Buffer[] = [];
  for (const event of splitEvents(block)) {
    if (!hasUsageObject(event)) {
      kept.push(event);
      continue;
    }
    const payload = eventData(event);
    const usage = payload ? reader.read(payload) : undefined;
    if (usage) outcome.usage = usage;
    const usageOnly = Array.isArray(payload?.choices) && (payload.choices as unknown[]).length === 0;
    // A usage chunk whose usage is not counts is never relayed: the gateway's own count replaces it.
    const incredible = usageOnly && !usage && payload?.usage !== null && typeof payload?.usage === 'object';
    if (!(usageOnly && ((strip && usage) || incredible))) kept.push(event);
  }
  return kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept);
}

/** What a wait interrupted by shutdown resolves with. */
const STOPPED: unique symbol = Symbol('stopped');

/**
 * Commits the 200 and writes the stream read ahead by `readFirstEvent` as it arrives, honouring
 * backpressure, with `: ping` comments through long silences. A failure after the 200 becomes
 * one `data: {"error":...}` event (in the surface's shape), then the end; so does the end of
 * shutdown's grace period, with a 503 saying to send the request again.
 */
export async function relaySse(
  request: FastifyRequest,
  reply: FastifyReply,
  stream: StartedSse,
  options: SseOptions,
): Promise<SseOutcome> {
  const outcome: SseOutcome = { usage: undefined, streamError: false, firstChunkAt: undefined };
  const raw = reply.raw;
  const signal = request.gateway.abort.signal;
  const shutdown = options.shutdown;
  if (shutdown?.signal.aborted) {
    // Nothing is committed yet: an ordinary 503, refunded like any failure before the 200.
    options.abortUpstream?.();
    void stream.iterator.return?.().catch(() => {});
    throw shuttingDownError();
  }
  // Every wait below (the upstream's next bytes, the client's drain) ends when shutdown asks.
  let interrupt: (() => void) | undefined;
  const onShutdown = () => interrupt?.();
  shutdown?.signal.addEventListener('abort', onShutdown, { once: true });
  const orShutdown = <T>(wait: Promise<T>): Promise<T | typeof STOPPED> => {
    if (!shutdown) return wait;
    if (shutdown.signal.aborted) {
      wait.catch(() => {});
      return Promise.resolve(STOPPED);
    }
    return new Promise((resolve, reject) => {
      interrupt = () => resolve(STOPPED);
      wait.then(resolve, reject);
    });
  };
  reply.hijack();
  shutdown?.track(raw);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) headers[name] = value;
  raw.writeHead(stream.status, {
    ...headers,
    ...stream.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // Tells nginx-style proxies in front of us not to buffer the stream.
    'x-accel-buffering': 'no',
    'openai-processing-ms': processingMs(request),
  });
  // No flushHeaders(): the head block (or a ping) is written next, and node:http sends the
  // headers with the first write, one syscall and one packet fewer per stream.
  let lastWrite = Date.now();
  // Read ahead as long as a keep-alive interval, still without its first event: ping at once.
  if (stream.pending && stream.head === undefined) raw.write(PING);
  const keepAlive = setInterval(
    () => {
      if (Date.now() - lastWrite >= options.keepAliveMs && !raw.destroyed) {
        raw.write(PING);
        lastWrite = Date.now();
      }
    },
    Math.max(Math.floor(options.keepAliveMs / 2), 5),
  );
  const { splitter, iterator } = stream;
  // A Responses stream's events are numbered: an error event added at its end takes the next.
  const sequence = options.surface === 'responses' ? new ResponsesSequence() : undefined;
  let ended = false;
  /**
   * Shutdown ended the stream (with its own error event). Not a `streamError`: it is charged for
   * what was relayed, as a stream its client left, not refunded as one the upstream broke off.
   */
  let cut = false;
  /** The closing usage event was asked for (and placed before `[DONE]`). */
  let closed = false;
  try {
    let block = stream.head;
    let pending = stream.pending;
    for (;;) {
      if (block) {
        options.tee?.(block);
        sequence?.see(block);
        // An error event after the client left is the stream ending for it (a translated stream
        // says response.failed when its client goes): it left, it is charged as one that left.
        // Read on for requests joined to it, a real upstream error then goes unmarked here; the
        // cache still keeps nothing of it (its assembler sees the error event).
        if (!signal.aborted && !outcome.streamError && hasErrorEvent(block)) outcome.streamError = true;
        let out = inspectBlock(block, outcome, options.stripUsageChunk, options.usage);
        let tallied = false;
        // No usage event after an error event: the stream failed, and it is not charged.
        if (
          options.closingUsage &&
          !closed &&
          outcome.usage === undefined &&
          !outcome.streamError &&
          !signal.aborted
        ) {
          const done = doneEventAt(out);
          if (done !== -1) {
            closed = true;
            options.tally?.add(out);
            tallied = true;
            const closing = options.closingUsage();
            if (closing) out = Buffer.concat([out.subarray(0, done), closing, out.subarray(done)]);
          }
        }
        if (signal.aborted) {
          if (!options.readOnWithoutClient?.()) break;
        } else if (out.length > 0) {
          outcome.firstChunkAt ??= performance.now();
          if (!tallied) options.tally?.add(out);
          lastWrite = Date.now();
          if (!raw.write(out)) {
            try {
              if ((await orShutdown(once(raw, 'drain', { signal }))) === STOPPED) {
                cut = true;
                break;
              }
            } catch (error) {
              if (!signal.aborted || !options.readOnWithoutClient?.()) throw error;
            }
          }
        }
      }
      const result = await orShutdown(pending ?? iterator.next());
      pending = undefined;
      if (result === STOPPED) {
        cut = true;
        break;
      }
      if (result.done) {
        ended = true;
        break;
      }
      block = splitter.push(result.value);
    }
    const rest = splitter.rest();
    if (rest && ended) {
      options.tee?.(rest);
      raw.write(rest);
    }
    // A stream that ended without `[DONE]` (some servers, modules) gets its usage event last.
    if (
      ended &&
      !closed &&
      options.closingUsage &&
      outcome.usage === undefined &&
      !outcome.streamError &&
      !signal.aborted
    ) {
      const closing = options.closingUsage();
      if (closing) raw.write(closing);
    }
    if (cut && !signal.aborted && !raw.destroyed) {
      request.log.info('stream ended by shutdown: an error event asks the client to send it again');
      raw.write(
        surfaceErrorEvent(
          options.surface,
          shuttingDownError(),
          options.bodyLimit,
          request.id,
          sequence?.next,
        ),
      );
    }
  } catch (error) {
    if (!signal.aborted && !(error instanceof ClientAbortedError) && !raw.destroyed) {
      outcome.streamError = true;
      request.log.warn(
        { error: { message: (error as Error).message } },
        'stream failed after the response started',
      );
      raw.write(surfaceErrorEvent(options.surface, error, options.bodyLimit, request.id, sequence?.next));
    }
  } finally {
    clearInterval(keepAlive);
    shutdown?.signal.removeEventListener('abort', onShutdown);
    if (cut) {
      // The client has its last event first; a read may still be pending, so the upstream
      // request is ended rather than its body waited for.
      if (!raw.destroyed) raw.end();
      options.abortUpstream?.();
      void iterator.return?.().catch(() => {});
    } else {
      // Left early (the client went, or the stream failed): let the upstream's body go, as a
      // for-await's break would.
      if (!ended) await iterator.return?.().catch(() => {});
      if (!raw.destroyed) raw.end();
    }
  }
  return outcome;
}

/** Reads a whole JSON answer, up to `limit` bytes; callers may inspect it before it goes out. */
export async function collectBody(response: BackendResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > limit) throw new UpstreamAnswerTooLargeError(limit);
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
