import { setImmediate as nextTurn } from 'node:timers/promises';
import { UpstreamTimeoutError } from '../../errors.js';
import { ClientAbortedError } from '../transport-failure.js';
import { boundedWait } from './bounded-wait.js';
import { type ContainContext, containError, malformedAnswer } from './contained-error.js';

export interface BodyLimits {
  /** performance.now() by which the first chunk must have come (the answer's time to first byte). */
  firstChunkBy: number;
  /**
   * performance.now() by which the whole body must have come, when it is read whole before the
   * client gets a byte of it (JSON): then the whole body is the answer's time to first byte.
   */
  wholeBy?: number | undefined;
  idleTimeoutMs: number;
  /** The caller's signal: the client leaving. */
  signal: AbortSignal;
  /** Tells the module to stop: the gateway gave up on the body or stopped reading it. */
  abandon: AbortController;
  context: ContainContext;
  /** Told of every call into the module's iterator still pending (see ContainmentOptions.onWork). */
  track?: ((work: Promise<unknown>) => void) | undefined;
}

/** A body's iterator, and whether calling it can be waited for at all (a sync one runs to its end). */
export type BodySource =
  | { sync: true; open: () => Iterator<unknown> }
  | { sync: false; open: () => AsyncIterator<unknown> };

/**
 * A body read without a pause would hold the event loop for as long as the module keeps
 * answering at once (a sync iterator, or an async one whose promises are already resolved): no
 * other request, timer or abort gets a turn. So the reader lets the event loop turn at least
 * this often, in pieces and in time.
 */
const PIECES_PER_TURN = 1024;
const MS_PER_TURN = 5;

/**
 * Knows whether the event loop turned since the reader last asked (a marker set from the next
 * turn's immediates), so that a body whose pieces come by themselves (a real stream, waiting
 * on its source) never waits for a turn it already had.
 */
class LoopTurns {
  private turned = false;
  private pieces = 0;
  private turnBy = 0;
  private readonly mark = () => {
    this.turned = true;
  };

  constructor() {
    this.restart();
  }

  private restart(): void {
    this.turned = false;
    this.pieces = 0;
    this.turnBy = performance.now() + MS_PER_TURN;
    setImmediate(this.mark);
  }

  /** Undefined when the reader may go on; else a turn of the event loop to wait for first. */
  pause(): Promise<void> | undefined {
    if (this.turned) {
      this.restart();
      return undefined;
    }
    if (++this.pieces < PIECES_PER_TURN && performance.now() < this.turnBy) return undefined;
    // The marker, queued before, runs in the same turn: the next call starts a new count.
    return nextTurn().then(() => undefined);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object'
    ? `an object (${value.constructor?.name ?? 'no prototype'})`
    : `a ${typeof value}`;
}

/**
 * A module's body as the Backend contract has it, or undefined when it is none of what a body
 * may be. A string or bytes given whole are taken as one chunk (a module answering JSON need
 * not wrap it in an array).
 */
export function iteratorOfBody(body: unknown): BodySource | undefined {
  if (typeof body === 'string' || body instanceof Uint8Array)
    return { sync: true, open: () => [body][Symbol.iterator]() };
  if (body === null || typeof body !== 'object') return undefined;
  const source = body as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIterator = source[Symbol.asyncIterator];
  if (typeof asyncIterator === 'function') return { sync: false, open: () => asyncIterator.call(body) };
  const syncIterator = source[Symbol.iterator];
  if (typeof syncIterator === 'function') return { sync: true, open: () => syncIterator.call(body) };
  return undefined;
}

function toBuffer(chunk: unknown, context: ContainContext): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw malformedAnswer(`a body chunk that is ${describe(chunk)}, not a Buffer or a string`, context);
}

type Pulled = { kind: 'value'; value: unknown } | { kind: 'timeout'; idle: boolean } | { kind: 'aborted' };

/**
 * The module's body, read under the gateway's rules: every chunk a Buffer (strings encoded as
 * UTF-8), the first within the answer's time to first byte and each next within the idle
 * timeout (a JSON body whole within the time to first byte), a throw mid-body turned into a
 * typed error the pipeline relays as an error event, the client's leaving noticed even by a
 * module that ignores its signal, and the event loop free for everything else between pieces.
 * Whoever stops reading early (the pipeline on a disconnect, or this on a timeout) aborts the
 * module's signal and returns its iterator, so its generation stops too.
 */
export async function* containedBody(
  source: BodySource,
  limits: BodyLimits,
): AsyncGenerator<Buffer, void, undefined> {
  const { context, signal, wholeBy } = limits;
  let iterator: Iterator<unknown> | AsyncIterator<unknown>;
  try {
    iterator = source.open();
  } catch (error) {
    throw containError(error, { ...context, clientAborted: signal.aborted });
  }
  /** The next piece: a sync iterator's at once (no timer could fire before it returns anyway). */
  const pull = async (first: boolean): Promise<Pulled> => {
    if (source.sync) return { kind: 'value', value: (iterator as Iterator<unknown>).next() };
    const now = performance.now();
    const pieceBy = first ? limits.firstChunkBy : now + limits.idleTimeoutMs;
    const by = wholeBy === undefined ? pieceBy : Math.min(pieceBy, wholeBy);
    const pending = new Promise<unknown>((resolve) => resolve((iterator as AsyncIterator<unknown>).next()));
    limits.track?.(pending);
    const outcome = await boundedWait(pending, Math.max(0, by - now), signal);
    return outcome.kind === 'timeout' ? { kind: 'timeout', idle: !first && by === pieceBy } : outcome;
  };
  let first = true;
  let finished = false;
  const turns = new LoopTurns();
  try {
    for (;;) {
      const pause = turns.pause();
      if (pause) await pause;
      if (signal.aborted) throw new ClientAbortedError();
      if (wholeBy !== undefined && performance.now() >= wholeBy) throw timedOut(context, first, false);
      let pulled: Pulled;
      try {
        pulled = await pull(first);
      } catch (error) {
        // An iterator that threw is done: there is nothing to return.
        finished = true;
        throw containError(error, { ...context, clientAborted: signal.aborted });
      }
      if (pulled.kind === 'aborted') throw new ClientAbortedError();
      if (pulled.kind === 'timeout') throw timedOut(context, first, pulled.idle);
      const result = pulled.value as IteratorResult<unknown> | null | undefined;
      if (result === null || typeof result !== 'object') {
        throw malformedAnswer('a body iterator whose next() gave no iterator result', context);
      }
      if (result.done) {
        finished = true;
        return;
      }
      first = false;
      yield toBuffer(result.value, context);
    }
  } finally {
    if (!finished) {
      limits.abandon.abort();
      // Not awaited: an async generator busy in an await answers return() only once that settles.
      const closing = new Promise((resolve) => resolve(iterator.return?.()));
      limits.track?.(closing);
      closing.catch(() => {});
    }
  }
}

function timedOut(context: ContainContext, first: boolean, idle: boolean): UpstreamTimeoutError {
  if (first) return new UpstreamTimeoutError(`Backend '${context.backend}' did not start answering in time.`);
  return new UpstreamTimeoutError(
    idle
      ? `Backend '${context.backend}' went silent in the middle of its answer.`
      : `Backend '${context.backend}' did not finish its answer in time.`,
  );
}

/** Small pieces are joined in blocks of at least this many bytes (or this many pieces)... */
const BLOCK_BYTES = 64 * 1024;
const PIECES_PER_BLOCK = 4096;

/**
 * Reads a contained body whole, up to `limit` bytes (past it the module is misbehaving). Small
 * pieces are joined as they come: kept one by one, a body of millions of one-byte pieces would
 * cost a hundred times its bytes in memory long before it reached the limit.
 */
export async function collectContained(
  body: AsyncIterable<Buffer>,
  limit: number,
  context: ContainContext,
): Promise<Buffer> {
  const blocks: Buffer[] = [];
  let pieces: Buffer[] = [];
  let piecesBytes = 0;
  let size = 0;
  const join = () => {
    if (pieces.length > 0)
      blocks.push(pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, piecesBytes));
    pieces = [];
    piecesBytes = 0;
  };
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw malformedAnswer(`a JSON answer larger than ${limit} bytes`, context);
    if (chunk.length >= BLOCK_BYTES) {
      join();
      blocks.push(chunk);
      continue;
    }
    pieces.push(chunk);
    piecesBytes += chunk.length;
    if (piecesBytes >= BLOCK_BYTES || pieces.length >= PIECES_PER_BLOCK) join();
  }
  join();
  return blocks.length === 1 ? (blocks[0] as Buffer) : Buffer.concat(blocks, size);
}
