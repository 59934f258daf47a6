import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendConfig } from '../../config/schema.js';
import { EndpointNotSupportedError, UpstreamClientError, UpstreamError } from '../../errors.js';
import type { Backend, BackendCall, BackendResponse, Endpoint, JsonCall } from '../backend.js';
import { encodeDone, encodeEvent } from '../sse-encoder.js';
import { chatCompletion, chatCompletionChunks } from './mock-chat.js';
import { completion, completionChunks } from './mock-completions.js';
import { type MockDirectives, readDirectives } from './mock-directives.js';
import { embeddings } from './mock-embeddings.js';
import { response, responseEvents } from './mock-responses.js';

type MockConfig = Extract<BackendConfig, { type: 'mock' }>;

const SUPPORTED: ReadonlySet<Endpoint> = new Set<Endpoint>([
  'chat.completions',
  'completions',
  'embeddings',
  'responses',
]);

const ERROR_TYPES: Record<number, { type: string; code: string | null }> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  403: { type: 'permission_error', code: null },
  404: { type: 'invalid_request_error', code: 'model_not_found' },
  429: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
};

/**
 * A deterministic in-process model: echoes the last user message, calls tools when given
 * some, derives embeddings from a hash of the input, and fails on request (see
 * mock-directives.ts). It backs the default `mock` model, the demos and the tests.
 */
export class MockBackend implements Backend {
  readonly type = 'mock';

  constructor(
    readonly name: string,
    private readonly config: MockConfig,
  ) {}

  supports(endpoint: Endpoint): boolean {
    return SUPPORTED.has(endpoint);
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    if (call.kind !== 'json' || !SUPPORTED.has(call.endpoint)) {
      throw new EndpointNotSupportedError(call.endpoint, call.model);
    }
    const directives = readDirectives(JSON.stringify(call.body));
    const delay = directives.delayMs ?? this.config.latencyMs;
    if (delay > 0) await sleep(delay, undefined, { signal: call.signal });
    if (directives.errorStatus !== undefined) throw scriptedError(directives.errorStatus);
    const options = { model: call.model, chunks: this.config.chunks };
    if (call.stream && call.endpoint !== 'embeddings') {
      return {
        status: 200,
        contentType: 'text/event-stream; charset=utf-8',
        headers: {},
        body: this.emit(this.events(call, options), directives, call.signal),
      };
    }
    const body = this.json(call, options);
    return {
      status: 200,
      contentType: 'application/json',
      headers: {},
      body: [Buffer.from(JSON.stringify(body))],
    };
  }

  private json(call: JsonCall, options: { model: string; chunks: number }): Record<string, unknown> {
    switch (call.endpoint) {
      case 'chat.completions':
        return chatCompletion(call.body, options);
      case 'completions':
        return completion(call.body, options);
      case 'responses':
        return response(call.body, options);
      default:
        return embeddings(call.body, { model: call.model, dimensions: this.config.embeddingDimensions });
    }
  }

  private events(call: JsonCall, options: { model: string; chunks: number }): string[] {
    if (call.endpoint === 'responses') {
      return responseEvents(call.body, options).map((event) => encodeEvent(event.data, event.type));
    }
    const chunks =
      call.endpoint === 'completions'
        ? completionChunks(call.body, options)
        : chatCompletionChunks(call.body, options);
    return [...chunks.map((chunk) => encodeEvent(chunk)), encodeDone()];
  }

  private async *emit(
    events: string[],
    directives: MockDirectives,
    signal: AbortSignal,
  ): AsyncGenerator<Buffer> {
    for (let i = 0; i < events.length; i++) {
      if (directives.failAfterChunks !== undefined && i >= directives.failAfterChunks) {
        throw new UpstreamError(`Backend '${this.name}' lost the connection in the middle of its answer.`);
      }
      if (i > 0 && this.config.chunkDelayMs > 0) await sleep(this.config.chunkDelayMs, undefined, { signal });
      yield Buffer.from(events[i] ?? '');
    }
  }

  async listModels(): Promise<string[]> {
    return [];
  }

  async checkHealth(): Promise<void> {}

  async close(): Promise<void> {}
}

function scriptedError(status: number): Error {
  if (status >= 500)
    return new UpstreamError(`Backend mock failed with status ${status}: scripted mock error.`);
  const kind = ERROR_TYPES[status] ?? { type: 'invalid_request_error', code: null };
  const body = {
    error: {
      message: `Scripted mock error (status ${status}).`,
      type: kind.type,
      param: null,
      code: kind.code,
    },
  };
  return new UpstreamClientError(status, Buffer.from(JSON.stringify(body)), 'application/json', {});
}
