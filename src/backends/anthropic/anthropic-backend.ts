import { type Dispatcher, Pool } from 'undici';
import type { AnthropicBackendConfig } from '../../config/anthropic-schema.js';
import { lookUpByModelPrefix } from '../../config/model-prefix-lookup.js';
import { EndpointNotSupportedError, UpstreamClientError, UpstreamError } from '../../errors.js';
import { answerKeepingNumbers } from '../../json-numbers.js';
import {
  type Backend,
  type BackendCall,
  type BackendResponse,
  ENDPOINT_PATHS,
  type Endpoint,
  type JsonCall,
} from '../backend.js';
import { readModelIds } from '../model-list.js';
import { KeyPool, type KeyStatus, retryAfterMs } from '../openai-compatible/key-pool.js';
import { scrubErrorEvents } from '../scrubbed-stream.js';
import { SecretScrubber } from '../secret-scrubber.js';
import { mapUpstreamFailure } from '../transport-failure.js';
import { mapAnthropicError, parseAnthropicError } from './anthropic-errors.js';
import { chatToMessages, type TranslationOptions } from './chat-to-messages.js';
import { chatToCompletion, completionToChatBody } from './completion-translation.js';
import { messageToChat } from './message-to-chat.js';
import { isRelayedAsIs, PASS_THROUGH_RETRY_HEADERS, passThroughHeaders } from './messages-passthrough.js';
import { StreamTranslator } from './stream-translator.js';
import { UpstreamExchange } from './upstream-exchange.js';

const ERROR_BODY_LIMIT = 1024 * 1024;
/** A Messages API answer is text and tool input; far below this. */
const ANSWER_LIMIT = 64 * 1024 * 1024;
const RETRY_HEADERS = ['retry-after', 'retry-after-ms'];
const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';
const SUPPORTED: ReadonlySet<Endpoint> = new Set<Endpoint>([
  'chat.completions',
  'completions',
  'messages',
  'messages.count_tokens',
]);

/**
 * Claude models behind the OpenAI API: Chat Completions requests are translated to Anthropic's
 * Messages API (chat-to-messages.ts), answers and streams back (message-to-chat.ts,
 * stream-translator.ts), failures to the gateway's typed errors (anthropic-errors.ts). Legacy
 * completions go the same way as one user message (completion-translation.ts). Other OpenAI
 * endpoints have no Messages API counterpart; `/v1/responses` reaches this backend through the
 * gateway's Responses-to-Chat translation. Anthropic's own `/v1/messages` and
 * `/v1/messages/count_tokens` are forwarded untranslated (messages-passthrough.ts).
 */
export class AnthropicBackend implements Backend {
  readonly type = 'anthropic';
  private readonly pool: Pool;
  private readonly v1Path: string;
  private readonly fixedHeaders: Record<string, string>;
  private readonly totalMs: number;
  /** Upstream messages go to clients and logs; an echoed key or the upstream's address may not. */
  private readonly secrets: SecretScrubber;
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
    this.secrets = new SecretScrubber(
      [
        config.apiKey,
        ...(config.apiKeys ?? []).map((entry) => entry.key),
        url.host,
        ...Object.values(config.headers),
      ].filter((secret): secret is string => typeof secret === 'string' && secret.length >= 6),
    );
    this.translation = { thinkingBudgets: config.thinkingBudgets };
  }

  supports(endpoint: Endpoint): boolean {
    return SUPPORTED.has(endpoint);
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    if (call.kind !== 'json' || !this.supports(call.endpoint))
      throw new EndpointNotSupportedError(call.endpoint, call.model);
    if (call.endpoint === 'messages' || call.endpoint === 'messages.count_tokens')
      return this.passThrough(call);
    const shape = call.endpoint === 'completions' ? 'completion' : 'chat';
    // The client's mistakes are 400s before anything goes upstream.
    const chatBody = shape === 'completion' ? completionToChatBody(call.body) : call.body;
    const request = chatToMessages(chatBody, call.model, {
      ...this.translation,
      defaultMaxTokens: this.maxTokensFor(call.model),
    });
    const exchange = await this.exchange(call, `${this.v1Path}/messages`, JSON.stringify(request), {});
    if (exchange.status >= 400) {
      const body = await exchange.readError(ERROR_BODY_LIMIT);
      throw this.failure(exchange, body);
    }
    const created = Math.floor(Date.now() / 1_000);
    if (call.stream) {
      await this.expectStream(exchange);
      return {
        status: 200,
        contentType: SSE_CONTENT_TYPE,
        headers: {},
        body: this.translateStream(exchange.chunks(), call, shape, created),
      };
    }
    const { value: message } = await this.readAnswer(exchange);
    const chat = messageToChat(message, created);
    return {
      status: 200,
      contentType: 'application/json',
      headers: {},
      body: [Buffer.from(JSON.stringify(shape === 'completion' ? chatToCompletion(chat) : chat))],
    };
  }

  /**
   * Anthropic's own API from an Anthropic client (messages-passthrough.ts): the body goes as the
   * client wrote it, so fields this gateway has never heard of reach the upstream, and the answer
   * comes back byte for byte (a stream as its events complete, error events scrubbed of the
   * gateway's secrets: scrubbed-stream.ts). Response headers are not
   * relayed: the upstream's request-id would name another request than the gateway's own, and
   * cached answers replay these headers.
   */
  private async passThrough(call: JsonCall): Promise<BackendResponse> {
    const body = JSON.stringify(call.body);
    const path = `${this.v1Path}${ENDPOINT_PATHS[call.endpoint]}`;
    const exchange = await this.exchange(
      call,
      path,
      body,
      passThroughHeaders(this.fixedHeaders, call.headers),
    );
    if (exchange.status >= 400) {
      const failure = await exchange.readError(ERROR_BODY_LIMIT);
      throw this.passThroughFailure(exchange, failure);
    }
    if (call.stream) {
      await this.expectStream(exchange);
      const body = scrubErrorEvents(exchange.chunks(), this.secrets);
      return { status: 200, contentType: SSE_CONTENT_TYPE, headers: {}, body };
    }
    const { bytes } = await this.readAnswer(exchange);
    return { status: 200, contentType: 'application/json', headers: {}, body: [bytes] };
  }

  /**
   * Sends one request with the backend's credentials (its key, or one from the pool, which hears
   * how the upstream took it) and the given protocol headers over the configured ones.
   */
  private async exchange(
    call: JsonCall,
    path: string,
    body: string,
    protocol: Record<string, string>,
  ): Promise<UpstreamExchange> {
    const key = this.keys?.take(this.name);
    const headers: Record<string, string> = {
      ...this.fixedHeaders,
      ...protocol,
      'content-type': 'application/json',
    };
    if (call.stream) headers.accept = 'text/event-stream';
    if (key) headers['x-api-key'] = key.key;
    const exchange = await UpstreamExchange.open(
      this.pool,
      { path, headers, body },
      { backend: this.name, totalMs: this.totalMs, signal: call.signal },
      // Gathered as they arrive: an error body (shown in part) and a JSON answer (read whole).
      (status) => (status >= 400 ? ERROR_BODY_LIMIT : call.stream ? undefined : ANSWER_LIMIT + 1),
    );
    if (key && exchange.status >= 400)
      this.keys?.report(key.index, exchange.status, retryAfterMs(exchange.headers));
    return exchange;
  }

  /** A stream request must get a stream; anything else is the upstream's failure. */
  private async expectStream(exchange: UpstreamExchange): Promise<void> {
    const contentType = exchange.header('content-type') ?? '';
    if (contentType.startsWith('text/event-stream')) return;
    await exchange.discard();
    throw new UpstreamError(`Backend '${this.name}' answered a stream request with '${contentType}'.`);
  }

  /** A JSON answer, whole: its bytes and what they parse to. */
  private async readAnswer(exchange: UpstreamExchange): Promise<{ bytes: Buffer; value: unknown }> {
    const bytes = await exchange.read(ANSWER_LIMIT + 1);
    if (bytes.length > ANSWER_LIMIT)
      throw new UpstreamError(`Backend '${this.name}' sent an answer larger than ${ANSWER_LIMIT} bytes.`);
    try {
      return { bytes, value: answerKeepingNumbers(bytes.toString('utf8')) };
    } catch {
      throw new UpstreamError(`Backend '${this.name}' sent an answer that is not JSON.`);
    }
  }

  private async *translateStream(
    chunks: AsyncIterable<Buffer>,
    call: JsonCall,
    shape: 'chat' | 'completion',
    created: number,
  ): AsyncGenerator<Buffer> {
    const options = call.body.stream_options as { include_usage?: unknown } | null | undefined;
    const translator = new StreamTranslator({
      shape,
      created,
      includeUsage: options?.include_usage === true,
      onError: (info) =>
        mapAnthropicError(
          {
            type: info.type,
            message: info.message === undefined ? undefined : this.secrets.scrub(info.message),
          },
          { backend: this.name, status: undefined, retryHeaders: {} },
        ),
    });
    // Transport failures arrive already mapped (UpstreamExchange.chunks); the translator throws
    // only typed errors. Leaving the loop, however, releases the exchange.
    for await (const chunk of chunks) {
      const out = translator.push(chunk);
      if (out !== '') yield Buffer.from(out);
      const failure = translator.takeFailure();
      if (failure !== undefined) throw failure;
    }
    const out = translator.end();
    if (out !== '') yield Buffer.from(out);
  }

  /**
   * A pass-through failure: the client's own 4xx goes back as the upstream wrote it (scrubbed),
   * for the Anthropic surface to relay; the rest maps as for chat calls, so routing retries them.
   */
  private passThroughFailure(exchange: UpstreamExchange, body: Buffer): Error {
    const { status } = exchange;
    if (!isRelayedAsIs(status)) return this.failure(exchange, body);
    return new UpstreamClientError(
      status,
      this.secrets.scrubBytes(body),
      exchange.header('content-type'),
      this.headersOf(exchange, PASS_THROUGH_RETRY_HEADERS),
    );
  }

  private failure(exchange: UpstreamExchange, body: Buffer): Error {
    // Scrubbed before it is read: the message shown is cut to a length, and a cut through a
    // secret would leave a part of it that no longer matches.
    const info = parseAnthropicError(this.secrets.scrubBytes(body));
    return mapAnthropicError(info, {
      backend: this.name,
      status: exchange.status,
      retryHeaders: this.headersOf(exchange, RETRY_HEADERS),
    });
  }

  private headersOf(exchange: UpstreamExchange, names: readonly string[]): Record<string, string> {
    const found: Record<string, string> = {};
    for (const name of names) {
      const value = exchange.header(name);
      if (value !== undefined) found[name] = value;
    }
    return found;
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
