import { type Dispatcher, Pool } from 'undici';
import type { AnthropicBackendConfig } from '../../config/anthropic-schema.js';
import { lookUpByModelPrefix } from '../../config/model-prefix-lookup.js';
import { EndpointNotSupportedError, UpstreamError } from '../../errors.js';
import type { Backend, BackendCall, BackendResponse, Endpoint, JsonCall } from '../backend.js';
import { readModelIds } from '../model-list.js';
import { KeyPool, type KeyStatus, retryAfterMs } from '../openai-compatible/key-pool.js';
import { mapUpstreamFailure } from '../transport-failure.js';
import { mapAnthropicError, parseAnthropicError } from './anthropic-errors.js';
import { chatToMessages, type TranslationOptions } from './chat-to-messages.js';
import { chatToCompletion, completionToChatBody } from './completion-translation.js';
import { messageToChat } from './message-to-chat.js';
import { StreamTranslator } from './stream-translator.js';

const ERROR_BODY_LIMIT = 1024 * 1024;
/** A Messages API answer is text and tool input; far below this. */
const ANSWER_LIMIT = 64 * 1024 * 1024;
const RETRY_HEADERS = ['retry-after', 'retry-after-ms'];

/**
 * Claude models behind the OpenAI API: Chat Completions requests are translated to Anthropic's
 * Messages API (chat-to-messages.ts), answers and streams back (message-to-chat.ts,
 * stream-translator.ts), failures to the gateway's typed errors (anthropic-errors.ts). Legacy
 * completions go the same way as one user message (completion-translation.ts). Other OpenAI
 * endpoints have no Messages API counterpart; `/v1/responses` reaches this backend through the
 * gateway's Responses-to-Chat translation.
 */
export class AnthropicBackend implements Backend {
  readonly type = 'anthropic';
  private readonly pool: Pool;
  private readonly v1Path: string;
  private readonly fixedHeaders: Record<string, string>;
  private readonly totalMs: number;
  private readonly secrets: string[];
  private readonly keys: KeyPool | undefined;
  private readonly translation: Omit<TranslationOptions, 'defaultMaxTokens'>;

  constructor(
    readonly name: string,
    private readonly config: AnthropicBackendConfig,
  ) {
    const url = new URL(config.baseUrl);
    const base = url.pathname.replace(/\/+$/, '');
    this.v1Path = base.endsWith('/v1') ? base : `${base}/v1`;
    this.pool = new Pool(url.origin, {
      connections: config.pool.connections,
      keepAliveTimeout: config.pool.keepAliveTimeoutMs,
      connectTimeout: config.timeouts.connectMs,
      headersTimeout: config.timeouts.firstByteMs,
      bodyTimeout: config.timeouts.idleMs,
    });
    this.totalMs = config.timeouts.totalMs;
    const headers: Record<string, string> = Object.fromEntries(
      Object.entries(config.headers).map(([key, value]) => [key.toLowerCase(), value]),
    );
    headers['anthropic-version'] = config.anthropicVersion;
    if (config.betas.length > 0) headers['anthropic-beta'] = config.betas.join(',');
    if (config.apiKey) headers['x-api-key'] = config.apiKey;
    this.fixedHeaders = headers;
    this.keys = config.apiKeys && config.apiKeys.length > 0 ? new KeyPool(config.apiKeys) : undefined;
    this.secrets = [
      config.apiKey,
      ...(config.apiKeys ?? []).map((entry) => entry.key),
      url.host,
      ...Object.values(config.headers),
    ].filter((secret): secret is string => typeof secret === 'string' && secret.length >= 6);
    this.translation = { thinkingBudgets: config.thinkingBudgets };
  }

  supports(endpoint: Endpoint): boolean {
    return endpoint === 'chat.completions' || endpoint === 'completions';
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    if (call.kind !== 'json' || !this.supports(call.endpoint))
      throw new EndpointNotSupportedError(call.endpoint, call.model);
    const shape = call.endpoint === 'completions' ? 'completion' : 'chat';
    // The client's mistakes are 400s before anything goes upstream.
    const chatBody = shape === 'completion' ? completionToChatBody(call.body) : call.body;
    const request = chatToMessages(chatBody, call.model, {
      ...this.translation,
      defaultMaxTokens: this.maxTokensFor(call.model),
    });
    const key = this.keys?.take(this.name);
    const controller = new AbortController();
    let totalTimedOut = false;
    const onClientAbort = () => controller.abort();
    call.signal.addEventListener('abort', onClientAbort, { once: true });
    if (call.signal.aborted) controller.abort();
    const timer = setTimeout(() => {
      totalTimedOut = true;
      controller.abort();
    }, this.totalMs);
    timer.unref();
    const release = () => {
      clearTimeout(timer);
      call.signal.removeEventListener('abort', onClientAbort);
    };
    const context = () => ({ backend: this.name, totalTimedOut, clientAborted: call.signal.aborted });
    const headers: Record<string, string> = { ...this.fixedHeaders, 'content-type': 'application/json' };
    if (call.stream) headers.accept = 'text/event-stream';
    if (key) headers['x-api-key'] = key.key;
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: 'POST',
        path: `${this.v1Path}/messages`,
        headers,
        body: JSON.stringify(request),
        signal: controller.signal,
      });
    } catch (error) {
      release();
      throw mapUpstreamFailure(error, context());
    }
    if (key && response.statusCode >= 400)
      this.keys?.report(key.index, response.statusCode, retryAfterMs(response.headers));
    if (response.statusCode >= 400) {
      const body = await readLimited(response.body, ERROR_BODY_LIMIT).catch(() => Buffer.alloc(0));
      release();
      throw this.failure(response.statusCode, body, response.headers);
    }
    const created = Math.floor(Date.now() / 1_000);
    const contentType = headerValue(response.headers['content-type']) ?? '';
    if (call.stream) {
      if (!contentType.startsWith('text/event-stream')) {
        await response.body.dump().catch(() => {});
        release();
        throw new UpstreamError(`Backend '${this.name}' answered a stream request with '${contentType}'.`);
      }
      return {
        status: 200,
        contentType: 'text/event-stream; charset=utf-8',
        headers: {},
        body: this.translateStream(response.body, call, shape, created, context, release),
      };
    }
    let answer: Buffer;
    try {
      answer = await readLimited(response.body, ANSWER_LIMIT + 1);
    } catch (error) {
      throw mapUpstreamFailure(error, context());
    } finally {
      release();
    }
    if (answer.length > ANSWER_LIMIT)
      throw new UpstreamError(`Backend '${this.name}' sent an answer larger than ${ANSWER_LIMIT} bytes.`);
    let message: unknown;
    try {
      message = JSON.parse(answer.toString('utf8'));
    } catch {
      throw new UpstreamError(`Backend '${this.name}' sent an answer that is not JSON.`);
    }
    const chat = messageToChat(message, created);
    return {
      status: 200,
      contentType: 'application/json',
      headers: {},
      body: [Buffer.from(JSON.stringify(shape === 'completion' ? chatToCompletion(chat) : chat))],
    };
  }

  private async *translateStream(
    body: AsyncIterable<Buffer>,
    call: JsonCall,
    shape: 'chat' | 'completion',
    created: number,
    context: () => Parameters<typeof mapUpstreamFailure>[1],
    release: () => void,
  ): AsyncGenerator<Buffer> {
    const options = call.body.stream_options as { include_usage?: unknown } | null | undefined;
    const translator = new StreamTranslator({
      shape,
      created,
      includeUsage: options?.include_usage === true,
      onError: (info) =>
        mapAnthropicError(
          { type: info.type, message: info.message === undefined ? undefined : this.scrub(info.message) },
          { backend: this.name, status: undefined, retryHeaders: {} },
        ),
    });
    try {
      for await (const chunk of body) {
        const out = translator.push(chunk);
        if (out !== '') yield Buffer.from(out);
        const failure = translator.takeFailure();
        if (failure !== undefined) throw failure;
      }
      const out = translator.end();
      if (out !== '') yield Buffer.from(out);
    } catch (error) {
      throw mapUpstreamFailure(error, context());
    } finally {
      release();
    }
  }

  private failure(status: number, body: Buffer, headers: Dispatcher.ResponseData['headers']): Error {
    const info = parseAnthropicError(body);
    const retryHeaders: Record<string, string> = {};
    for (const name of RETRY_HEADERS) {
      const value = headerValue(headers[name]);
      if (value !== undefined) retryHeaders[name] = value;
    }
    return mapAnthropicError(
      { type: info.type, message: info.message === undefined ? undefined : this.scrub(info.message) },
      { backend: this.name, status, retryHeaders },
    );
  }

  /** Upstream messages go to clients and logs; an echoed key or the upstream's address may not. */
  private scrub(text: string): string {
    let scrubbed = text;
    for (const secret of this.secrets) scrubbed = scrubbed.replaceAll(secret, '[redacted]');
    return scrubbed;
  }

  /** `modelMaxTokens` by exact name, else by the longest `<name>-` prefix; else `maxTokens`. */
  private maxTokensFor(model: string): number {
    return lookUpByModelPrefix(this.config.modelMaxTokens, model) ?? this.config.maxTokens;
  }

  /** The key pool's state (never the keys), or undefined without `apiKeys`. */
  keyPool(): KeyStatus[] | undefined {
    return this.keys?.status();
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    return readModelIds(await this.get(`${this.v1Path}/models?limit=1000`, signal), this.name);
  }

  async checkHealth(signal: AbortSignal): Promise<void> {
    const response = await this.get(`${this.v1Path}/models?limit=1`, signal);
    await response.body.dump();
    if (response.statusCode >= 500) throw new Error(`status ${response.statusCode}`);
  }

  private async get(path: string, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const key = this.keys?.pick();
    const headers = key ? { ...this.fixedHeaders, 'x-api-key': key.key } : this.fixedHeaders;
    try {
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

async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > limit) {
      parts.push(chunk.subarray(0, limit - size));
      break;
    }
    parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
