import { type Dispatcher, Pool } from 'undici';
import type { BackendConfig } from '../../config/schema.js';
import {
  InvalidRequestError,
  UpstreamAnswerTooLargeError,
  UpstreamClientError,
  UpstreamError,
} from '../../errors.js';
import {
  type Backend,
  type BackendCall,
  type BackendResponse,
  ENDPOINT_PATHS,
  type Endpoint,
  MAX_JSON_ANSWER_BYTES,
} from '../backend.js';
import { readModelIds } from '../model-list.js';
import { scrubErrorEvents } from '../scrubbed-stream.js';
import { SecretScrubber } from '../secret-scrubber.js';
import { mapUpstreamFailure } from '../transport-failure.js';
import { callUpstream, type UpstreamHeaders } from '../upstream-call.js';
import { KeyPool, type KeyStatus, retryAfterMs } from './key-pool.js';

type OpenAIConfig = Extract<BackendConfig, { type: 'openai' }>;
type AzureConfig = Extract<BackendConfig, { type: 'azure' }>;

const ERROR_BODY_LIMIT = 1024 * 1024;
/** Headers of an upstream error that tell the client when to retry. */
const RELAYED_ERROR_HEADERS = ['retry-after', 'retry-after-ms', 'x-should-retry'];
/** Every OpenAI endpoint; Anthropic's `messages` are not (they are translated to chat instead). */
const SUPPORTED: ReadonlySet<Endpoint> = new Set(
  (Object.keys(ENDPOINT_PATHS) as Endpoint[]).filter(
    (endpoint) => endpoint !== 'messages' && endpoint !== 'messages.count_tokens',
  ),
);

/**
 * Any OpenAI-compatible server (OpenAI, vLLM, Ollama `/v1`, llama.cpp server, LM Studio,
 * Groq, ...) and Azure OpenAI, which differs only in URL layout and auth header.
 */
export class OpenAICompatibleBackend implements Backend {
  readonly type: 'openai' | 'azure';
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly fixedHeaders: Record<string, string>;
  private readonly totalMs: number;
  private readonly apiVersion: string | undefined;
  /**
   * Upstream error bodies and error events are relayed to clients and logged; some upstreams
   * echo the key they were sent or name their own address. Neither may leave the gateway.
   */
  private readonly secrets: SecretScrubber;
  /** `apiKeys`: the keys requests take turns with; undefined with one `apiKey` (or none). */
  private readonly keys: KeyPool | undefined;

  constructor(
    readonly name: string,
    config: OpenAIConfig | AzureConfig,
  ) {
    this.type = config.type;
    const url = new URL(config.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: config.pool.connections,
      keepAliveTimeout: config.pool.keepAliveTimeoutMs,
      connectTimeout: config.timeouts.connectMs,
      headersTimeout: config.timeouts.firstByteMs,
      bodyTimeout: config.timeouts.idleMs,
    });
    this.totalMs = config.timeouts.totalMs;
    const headers: Record<string, string> = { ...lowerCaseKeys(config.headers) };
    const poolKeys = config.type === 'openai' ? (config.apiKeys ?? []) : [];
    this.keys = poolKeys.length > 0 ? new KeyPool(poolKeys) : undefined;
    if (config.type === 'azure') {
      headers['api-key'] = config.apiKey;
      this.apiVersion = config.apiVersion;
    } else {
      if (config.apiKey) headers.authorization = `Bearer ${config.apiKey}`;
      if (config.organization) headers['openai-organization'] = config.organization;
      if (config.project) headers['openai-project'] = config.project;
    }
    this.fixedHeaders = headers;
    // Extra headers often carry credentials too (gateway tokens, org ids).
    this.secrets = new SecretScrubber(
      [
        config.apiKey,
        ...poolKeys.map((entry) => entry.key),
        url.host,
        ...Object.values(config.headers),
      ].filter((secret): secret is string => typeof secret === 'string' && secret.length >= 6),
    );
  }

  supports(endpoint: Endpoint): boolean {
    return SUPPORTED.has(endpoint);
  }

  private pathFor(endpoint: Endpoint, model: string): string {
    const suffix = ENDPOINT_PATHS[endpoint];
    if (this.type === 'azure') {
      return `${this.basePath}/openai/deployments/${deploymentSegment(model)}${suffix}?api-version=${encodeURIComponent(this.apiVersion ?? '')}`;
    }
    return `${this.basePath}${suffix}`;
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    // First: a name that cannot be a path segment is the client's error, before any timer starts.
    const path = this.pathFor(call.endpoint, call.model);
    const key = this.keys?.take(this.name);
    const headers: Record<string, string> = {
      ...this.fixedHeaders,
      'content-type': call.kind === 'json' ? 'application/json' : call.contentType,
      'x-client-request-id': call.requestId,
    };
    if (call.kind === 'json' && call.stream) headers.accept = 'text/event-stream';
    if (key) headers.authorization = `Bearer ${key.key}`;
    // Outside the call: a body that cannot be serialised is the client's problem, not a transport one.
    const body = call.kind === 'json' ? JSON.stringify(call.body) : call.body;
    const answer = await callUpstream(
      this.pool,
      { method: 'POST', path, headers, body },
      { backend: this.name, totalMs: this.totalMs, signal: call.signal },
      // Error bodies are only shown in part; JSON answers are read whole by the gateway anyway.
      (status, answerHeaders) =>
        status >= 400
          ? ERROR_BODY_LIMIT
          : contentTypeOf(answerHeaders).includes('json')
            ? MAX_JSON_ANSWER_BYTES
            : undefined,
    );
    const contentType = contentTypeOf(answer.headers);
    if (key && answer.status >= 400)
      this.keys?.report(key.index, answer.status, retryAfterMs(answer.headers));
    if (answer.status >= 400) {
      // An error body that broke off: the status says enough.
      const errorBody =
        answer.whole?.cut instanceof Error ? Buffer.alloc(0) : (answer.whole?.bytes ?? Buffer.alloc(0));
      throw upstreamStatusError(
        this.name,
        answer.status,
        this.secrets.scrubBytes(errorBody),
        contentType,
        answer.headers,
      );
    }
    if (answer.whole?.cut === 'limit') throw new UpstreamAnswerTooLargeError(MAX_JSON_ANSWER_BYTES);
    if (answer.whole?.cut) throw answer.whole.cut;
    return {
      status: answer.status,
      contentType,
      headers: {},
      body: answer.whole
        ? [inBandErrorScrubbed(answer.whole.bytes, this.secrets)]
        : contentType.toLowerCase().startsWith('text/event-stream')
          ? scrubErrorEvents(answer.chunks, this.secrets)
          : answer.chunks,
    };
  }

  /** The key pool's state (never the keys), or undefined without `apiKeys`. */
  keyPool(): KeyStatus[] | undefined {
    return this.keys?.status();
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    if (this.type === 'azure') return [];
    return readModelIds(await this.get(`${this.basePath}/models`, signal), this.name);
  }

  async checkHealth(signal: AbortSignal): Promise<void> {
    const path =
      this.type === 'azure'
        ? `${this.basePath}/openai/models?api-version=${encodeURIComponent(this.apiVersion ?? '')}`
        : `${this.basePath}/models`;
    const response = await this.get(path, signal);
    await response.body.dump();
    // Any answer short of a server error means the upstream is there and speaking HTTP.
    if (response.statusCode >= 500) throw new Error(`status ${response.statusCode}`);
  }

  private async get(path: string, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    try {
      const key = this.keys?.pick();
      const headers = key ? { ...this.fixedHeaders, authorization: `Bearer ${key.key}` } : this.fixedHeaders;
      return await this.pool.request({ method: 'GET', path, headers, signal });
    } catch (error) {
      throw mapUpstreamFailure(error, {
        backend: this.name,
        totalTimedOut: signal.aborted,
        clientAborted: false,
      });
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/**
 * The model name as one URL path segment. Encoding keeps `/`, `?`, `#` and `%` inside the
 * segment, but `.` and `..` survive encoding and are dot-segments: a server or proxy that
 * normalises the path would read `/openai/deployments/../chat/completions` as another path. A
 * wildcard route (`az/*`) takes these names from the client, so they are refused, like ''.
 */
function deploymentSegment(model: string): string {
  if (model === '' || model === '.' || model === '..') {
    throw new InvalidRequestError(
      `Invalid 'model': '${model}' cannot name an Azure deployment (empty, '.' and '..' are not deployment names).`,
      'model',
    );
  }
  try {
    return encodeURIComponent(model);
  } catch {
    // URIError: a lone surrogate has no UTF-8 form to encode.
    throw new InvalidRequestError("Invalid 'model': the name is not valid Unicode text.", 'model');
  }
}

function upstreamStatusError(
  backend: string,
  status: number,
  body: Buffer,
  contentType: string,
  headers: UpstreamHeaders,
): Error {
  if (status < 500) {
    const relayed: Record<string, string> = {};
    for (const name of RELAYED_ERROR_HEADERS) {
      const value = headerValue(headers[name]);
      if (value !== undefined) relayed[name] = value;
    }
    return new UpstreamClientError(status, body, contentType, relayed);
  }
  const detail = upstreamMessage(body);
  return new UpstreamError(
    `Backend '${backend}' failed with status ${status}${detail ? `: ${detail}` : '.'}`,
  );
}

/** The upstream's own error message, if it sent the OpenAI envelope; bounded in length. */
function upstreamMessage(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { message?: unknown } };
    const message = parsed.error?.message;
    return typeof message === 'string' ? message.slice(0, 500) : undefined;
  } catch {
    return undefined;
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function contentTypeOf(headers: UpstreamHeaders): string {
  return headerValue(headers['content-type']) ?? 'application/octet-stream';
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([key, value]) => [key.toLowerCase(), value]));
}

const ERROR_KEY = Buffer.from('"error"');

/**
 * A 200 whose JSON is an error (some OpenAI-compatible servers answer failures so) is shown to the
 * client as an error (the chat path, the Messages and Responses translations): scrubbed like an
 * error status's body. Other answers cost one byte search and go as they came.
 */
function inBandErrorScrubbed(bytes: Buffer, secrets: SecretScrubber): Buffer {
  return bytes.includes(ERROR_KEY) ? secrets.scrubBytes(bytes) : bytes;
}
