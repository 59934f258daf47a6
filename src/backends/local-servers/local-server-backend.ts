import type { FastifyBaseLogger } from 'fastify';
import type { LocalServerConfig, LocalServerType } from '../../config/local-server-schema.js';
import { UpstreamClientError, UpstreamError, UpstreamTimeoutError } from '../../errors.js';
import type { BackendCall, BackendResponse, Endpoint } from '../backend.js';
import { OpenAICompatibleBackend } from '../openai-compatible/openai-compatible-backend.js';
import type { DiscoveringBackend } from './backend-availability.js';
import { LocalModelNotFoundError, ToolsNotSupportedError } from './local-server-errors.js';
import { type Capabilities, LOCAL_SERVER_PRESETS } from './local-server-presets.js';
import { type DiscoverySnapshot, ModelDiscovery } from './model-discovery.js';

/**
 * Ollama, vLLM, llama.cpp server or LM Studio: the OpenAI-compatible adapter does the requests;
 * this adds what a server on your own machine needs. Its models are discovered (so `local/*`
 * lists and routes whatever is pulled there), a server that is down is skipped by routing until
 * a probe finds it up, and what the server cannot do is refused or made up for here.
 */
export class LocalServerBackend implements DiscoveringBackend {
  readonly type: LocalServerType;
  readonly capabilities: Capabilities;
  private readonly requests: OpenAICompatibleBackend;
  private readonly discovery: ModelDiscovery;
  private readonly label: string;

  constructor(
    readonly name: string,
    config: LocalServerConfig,
    logger?: FastifyBaseLogger,
  ) {
    this.type = config.type;
    const preset = LOCAL_SERVER_PRESETS[config.type];
    this.label = preset.label;
    this.capabilities = { ...preset.capabilities, ...definedOnly(config.capabilities) };
    this.requests = new OpenAICompatibleBackend(name, {
      type: 'openai',
      baseUrl: config.baseUrl,
      apiKey: config.apiKey,
      headers: config.headers,
      timeouts: config.timeouts,
      pool: config.pool,
    });
    const headers: Record<string, string> = Object.fromEntries(
      Object.entries(config.headers).map(([key, value]) => [key.toLowerCase(), value]),
    );
    if (config.apiKey) headers.authorization = `Bearer ${config.apiKey}`;
    this.discovery = new ModelDiscovery({
      backend: name,
      baseUrl: config.baseUrl,
      headers,
      refreshMs: config.discovery.refreshMs,
      retryMs: config.discovery.retryMs,
      timeoutMs: config.discovery.timeoutMs,
      nativeTagsPath: preset.nativeTagsPath,
      logger,
    });
    this.discovery.start();
  }

  supports(endpoint: Endpoint): boolean {
    if (endpoint === 'responses') return this.capabilities.responses;
    if (endpoint === 'embeddings') return this.capabilities.embeddings;
    return this.requests.supports(endpoint);
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    const sent = call.kind === 'json' ? this.adapt(call) : call;
    try {
      return await this.requests.send(sent);
    } catch (error) {
      // A refused connection, a 5xx or a timeout may mean the server went away: a probe tells,
      // and if so routing skips it from now on rather than after the circuit has counted failures.
      if (error instanceof UpstreamError || error instanceof UpstreamTimeoutError)
        void this.discovery.probeShared();
      if (error instanceof UpstreamClientError && error.status === 404 && !this.listed(call.model)) {
        // Maybe removed since the last probe, or the list is not known yet: the list catches up.
        void this.discovery.probeShared();
        throw new LocalModelNotFoundError(call, this.name, this.label, this.listKnown());
      }
      throw error;
    }
  }

  /** The request as this server takes it, or a clear 400 for what it cannot do. */
  private adapt(call: Extract<BackendCall, { kind: 'json' }>): BackendCall {
    if (!this.capabilities.tools && sendsTools(call.body))
      throw new ToolsNotSupportedError(call, this.name, this.label);
    if (this.capabilities.streamUsage || !call.stream || !('stream_options' in call.body)) return call;
    // It sends no usage chunk whatever is asked (and some builds refuse the field): the gateway
    // counts the streamed output itself and marks the usage estimated.
    const { stream_options: _unused, ...body } = call.body;
    return { ...call, body };
  }

  /**
   * True when the server's list is known and has this model: then its 404 is about something
   * else (an endpoint it lacks) and goes to the client as the server said it. Otherwise (not
   * listed, or no list known: not probed yet, or a list that could not be read) it is the model.
   */
  private listed(model: string): boolean {
    const { state, models } = this.discovery.snapshot();
    return state === 'up' && models !== undefined && models.includes(model);
  }

  private listKnown(): boolean {
    const { state, models } = this.discovery.snapshot();
    return state === 'up' && models !== undefined;
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    // The first probe may take up to discovery.timeoutMs (twice, with Ollama's fallback): the
    // caller's signal bounds this caller's wait, the probe goes on for the others.
    const found = await untilAborted(this.discovery.settled(), signal);
    if (found.state === 'down') throw this.downError(found);
    return found.models ?? [];
  }

  async checkHealth(signal: AbortSignal): Promise<void> {
    // Shared with a probe under way; the caller's signal bounds only its own wait.
    const found = await untilAborted(this.discovery.probeShared(), signal);
    if (found.state === 'down') throw this.downError(found);
  }

  private downError(found: DiscoverySnapshot): UpstreamError {
    const what = found.misconfigured ? 'is misconfigured' : 'is down';
    return new UpstreamError(`Backend '${this.name}' (${this.label}) ${what}: ${found.error}.`);
  }

  unavailableForMs(): number | undefined {
    return this.discovery.unavailableForMs();
  }

  discoveryState(): DiscoverySnapshot {
    return this.discovery.snapshot();
  }

  refreshModels(): Promise<DiscoverySnapshot> {
    return this.discovery.refresh();
  }

  async close(): Promise<void> {
    await Promise.all([this.discovery.stop(), this.requests.close()]);
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function sendsTools(body: Record<string, unknown>): boolean {
  const listed = (value: unknown) => Array.isArray(value) && value.length > 0;
  // `functions` is the older form of the same thing.
  return listed(body.tools) || listed(body.functions);
}

function definedOnly(overrides: Partial<Capabilities>): Partial<Capabilities> {
  return Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
}
