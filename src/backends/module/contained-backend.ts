import { UpstreamError, UpstreamTimeoutError } from '../../errors.js';
import {
  type Backend,
  type BackendCall,
  type BackendResponse,
  type Endpoint,
  MAX_JSON_ANSWER_BYTES,
} from '../backend.js';
import { ClientAbortedError } from '../transport-failure.js';
import { boundedWait } from './bounded-wait.js';
import { collectContained, containedBody, iteratorOfBody } from './contained-body.js';
import {
  type ContainContext,
  containError,
  invalidHeaderLogger,
  malformedAnswer,
} from './contained-error.js';
import type { ModuleBackend, ModuleBackendLogger } from './module-backend-api.js';
import { moduleHeaders } from './module-headers.js';

export interface ContainmentOptions {
  timeoutMs: number;
  idleTimeoutMs: number;
  /** The module's child logger (it names the backend: the lines logged here do not repeat it). */
  logger: ModuleBackendLogger;
  /**
   * Told of each of the module's own promises a call starts (its send(), each next() or return()
   * of its body), so a test can wait for the module itself to settle, which the containment,
   * answering for it on a timeout or an abort, does not.
   */
  onWork?: ((call: BackendCall, work: Promise<unknown>) => void) | undefined;
}

function run<T>(work: () => T | Promise<T>): Promise<T> {
  // A module's synchronous throw becomes a rejection like any other.
  return new Promise<T>((resolve) => resolve(work()));
}

/**
 * The gateway's side of a user's module: whatever the module does (throws, never answers,
 * answers outside the Backend contract, ignores its abort signal), callers get what any
 * adapter gives them — a BackendResponse of Buffers or a typed error — within the backend's
 * timeouts. See contained-error.ts for what the client is told.
 */
export class ContainedBackend implements Backend {
  readonly type = 'module';

  constructor(
    readonly name: string,
    private readonly inner: ModuleBackend,
    private readonly options: ContainmentOptions,
  ) {}

  supports(endpoint: Endpoint): boolean {
    try {
      return this.inner.supports(endpoint) === true;
    } catch (error) {
      this.options.logger.error({ endpoint, err: error }, 'backend module: supports() threw');
      return false;
    }
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    const { timeoutMs, idleTimeoutMs, logger } = this.options;
    const firstChunkBy = performance.now() + timeoutMs;
    const abandon = new AbortController();
    const signal = AbortSignal.any([call.signal, abandon.signal]);
    const context: ContainContext = {
      backend: this.name,
      logger,
      operation: `send ${call.endpoint}`,
      requestId: call.requestId,
      clientAborted: false,
    };
    const { onWork } = this.options;
    const sent = run(() => this.inner.send({ ...call, signal }));
    onWork?.(call, sent);
    let outcome: Awaited<ReturnType<typeof boundedWait<unknown>>>;
    try {
      outcome = await boundedWait(sent, timeoutMs, call.signal);
    } catch (error) {
      throw containError(error, { ...context, clientAborted: call.signal.aborted });
    }
    if (outcome.kind === 'aborted') throw new ClientAbortedError();
    if (outcome.kind === 'timeout') {
      abandon.abort();
      throw new UpstreamTimeoutError(`Backend '${this.name}' did not start answering in time.`);
    }
    const answer = outcome.value as Partial<Record<keyof BackendResponse, unknown>> | null | undefined;
    if (answer === null || typeof answer !== 'object') {
      throw malformedAnswer('send() resolved without a response object', context);
    }
    const { status, contentType } = answer;
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 299) {
      throw malformedAnswer(
        `status ${String(status)} without an error (a module reports a failure by throwing one, such as UpstreamClientError)`,
        context,
      );
    }
    if (typeof contentType !== 'string' || contentType === '') {
      throw malformedAnswer('a response without a contentType', context);
    }
    const source = iteratorOfBody(answer.body);
    if (!source) throw malformedAnswer('a response body that is not iterable', context);
    const json = !contentType.startsWith('text/event-stream') && contentType.includes('json');
    const body = containedBody(source, {
      firstChunkBy,
      // A JSON answer reaches the client whole or not at all: all of it is its first byte.
      wholeBy: json ? firstChunkBy : undefined,
      idleTimeoutMs,
      signal: call.signal,
      abandon,
      context,
      track: onWork && ((work) => onWork(call, work)),
    });
    const response = {
      status,
      contentType,
      headers: moduleHeaders(answer.headers, 'answer', invalidHeaderLogger(context)),
    };
    if (!json) return { ...response, body };
    // A JSON answer is read whole by the pipeline anyway; here it is also checked to be JSON.
    const collected = await collectContained(body, MAX_JSON_ANSWER_BYTES, context);
    let parsed: unknown;
    try {
      parsed = JSON.parse(collected.toString('utf8'));
    } catch {
      throw malformedAnswer(`a ${contentType} body that is not valid JSON`, context);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw malformedAnswer('a JSON body that is not a JSON object', context);
    }
    return { ...response, body: [collected] };
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const list = this.inner.listModels;
    if (!list) return [];
    const ids = await this.bounded('listModels', signal, () => list.call(this.inner, signal));
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
      throw malformedAnswer('listModels() resolved with something other than an array of strings', {
        backend: this.name,
        logger: this.options.logger,
        operation: 'listModels',
        clientAborted: false,
      });
    }
    return ids;
  }

  async checkHealth(signal: AbortSignal): Promise<void> {
    const check = this.inner.checkHealth;
    if (check) await this.bounded('checkHealth', signal, () => check.call(this.inner, signal));
  }

  unavailableForMs(): number | undefined {
    try {
      const ms = this.inner.unavailableForMs?.();
      return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : undefined;
    } catch (error) {
      this.options.logger.error({ err: error }, 'backend module: unavailableForMs() threw');
      return undefined;
    }
  }

  async close(): Promise<void> {
    const close = this.inner.close;
    if (!close) return;
    try {
      const outcome = await boundedWait(
        run(() => close.call(this.inner)),
        this.options.timeoutMs,
      );
      if (outcome.kind === 'timeout') {
        this.options.logger.warn({}, 'backend module: close() did not finish in time');
      }
    } catch (error) {
      this.options.logger.error({ err: error }, 'backend module: close() threw');
    }
  }

  /** listModels / checkHealth: the module's call, bounded by the caller's signal and timeoutMs. */
  private async bounded<T>(operation: string, signal: AbortSignal, work: () => T | Promise<T>): Promise<T> {
    let outcome: Awaited<ReturnType<typeof boundedWait<T>>>;
    try {
      outcome = await boundedWait(run(work), this.options.timeoutMs, signal);
    } catch (error) {
      throw containError(error, {
        backend: this.name,
        logger: this.options.logger,
        operation,
        clientAborted: false,
      });
    }
    if (outcome.kind !== 'value') {
      throw new UpstreamError(`Backend '${this.name}' did not finish ${operation}() in time.`);
    }
    return outcome.value;
  }
}
