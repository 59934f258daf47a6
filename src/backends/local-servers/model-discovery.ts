import type { FastifyBaseLogger } from 'fastify';
import { type Dispatcher, Pool, errors as undiciErrors } from 'undici';
import { readLimited } from '../read-limited.js';

/** `unknown` until the first probe has answered. */
export type AvailabilityState = 'unknown' | 'up' | 'down';

/** What the last probe of a server found. */
export interface DiscoverySnapshot {
  state: AvailabilityState;
  /** Model ids the server listed; undefined when it is down or did not say. */
  models: string[] | undefined;
  /** When the last probe ended (epoch ms). */
  checkedAt: number | undefined;
  /** Why the server counts as down, in words that name no address. */
  error: string | undefined;
  /** Down because it answers, but not as the config says it should (`error` says what to change). */
  misconfigured: boolean;
  /** When the next periodic probe runs (epoch ms). */
  nextProbeAt: number | undefined;
}

export interface ModelDiscoveryOptions {
  /** The backend's config name, for logs. */
  backend: string;
  baseUrl: string;
  headers: Record<string, string>;
  refreshMs: number;
  retryMs: number;
  timeoutMs: number;
  /** A second model list below the server's root (Ollama's `/api/tags`) when `/v1/models` fails. */
  nativeTagsPath?: string | undefined;
  logger?: FastifyBaseLogger | undefined;
  now?: () => number;
}

type ProbeResult =
  | { up: true; models: string[] | undefined }
  /** `misconfigured`: it answers, but not where the config says (see `probe`). */
  | { up: false; error: string; misconfigured?: boolean };

type ListAnswer =
  | { kind: 'list'; ids: string[] }
  /** `tooLarge`: the answer was cut at MAX_LIST_BYTES, unread past it. */
  | { kind: 'unlisted'; tooLarge?: boolean }
  | { kind: 'server-error'; reason: string }
  | { kind: 'unreachable'; reason: string };

/** A local server's base URL that is its root, where `/v1` is missing. */
const AT_ROOT: ProbeResult = {
  up: false,
  misconfigured: true,
  error: "its baseUrl is the server's root, not its OpenAI-compatible API (add /v1 to the end of baseUrl)",
};

/** A model list larger than this is not read on (a few thousand models fit in well under 1 MB). */
export const MAX_LIST_BYTES = 4 * 1024 * 1024;

/**
 * Keeps a local server's model list and whether it answers: read at start, every `refreshMs`
 * while it answers, every `retryMs` while it does not, and on demand. A probe that finds it
 * down makes routing skip it (`unavailableForMs`) until a later probe finds it up.
 */
export class ModelDiscovery {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly now: () => number;
  private current: DiscoverySnapshot = {
    state: 'unknown',
    models: undefined,
    checkedAt: undefined,
    error: undefined,
    misconfigured: false,
    nextProbeAt: undefined,
  };
  /** Probes are numbered so an older one that ends late cannot overwrite a newer finding. */
  private started = 0;
  private applied = 0;
  private inFlight: Promise<DiscoverySnapshot> | undefined;
  private firstProbe: Promise<DiscoverySnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Said once in the log, not at every probe. */
  private toldTooLarge = false;

  constructor(private readonly options: ModelDiscoveryOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
    // Its own small pool: a probe must not queue behind long streams on the request pool.
    this.pool = new Pool(url.origin, {
      connections: 2,
      connectTimeout: options.timeoutMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  /** Starts the first probe; boot does not wait for it (a server may come up later). */
  start(): void {
    // Never rejects: a probe that gets no answer finds the server down.
    this.firstProbe = this.probeShared();
  }

  snapshot(): DiscoverySnapshot {
    return { ...this.current, models: this.current.models ? [...this.current.models] : undefined };
  }

  /** The state once the first probe has answered (at once afterwards). */
  async settled(): Promise<DiscoverySnapshot> {
    if (this.current.state === 'unknown' && this.firstProbe) await this.firstProbe;
    return this.snapshot();
  }

  /** A new probe now, whatever is under way: what an operator asks for after pulling a model. */
  refresh(): Promise<DiscoverySnapshot> {
    return this.run();
  }

  /** A probe soon: joins one under way rather than adding another (readiness, a failed request). */
  probeShared(): Promise<DiscoverySnapshot> {
    this.inFlight ??= this.run().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** While the last probe found the server down: how long until the next probe. */
  unavailableForMs(): number | undefined {
    if (this.current.state !== 'down') return undefined;
    return Math.max(1, (this.current.nextProbeAt ?? this.now()) - this.now());
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    // A probe under way is abandoned: shutdown does not wait on a server that may be down.
    await this.pool.destroy();
  }

  private async run(): Promise<DiscoverySnapshot> {
    const sequence = ++this.started;
    const result = await this.probe();
    if (sequence > this.applied && !this.closed) {
      this.applied = sequence;
      this.apply(result);
    }
    return this.snapshot();
  }

  private apply(result: ProbeResult): void {
    const before = this.current.state;
    const at = this.now();
    const delay = result.up ? this.options.refreshMs : this.options.retryMs;
    this.current = result.up
      ? {
          state: 'up',
          models: result.models,
          checkedAt: at,
          error: undefined,
          misconfigured: false,
          nextProbeAt: at + delay,
        }
      : {
          state: 'down',
          models: undefined,
          checkedAt: at,
          error: result.error,
          misconfigured: result.misconfigured === true,
          nextProbeAt: at + delay,
        };
    const log = { backend: this.options.backend };
    if (result.up && before === 'down') this.options.logger?.info(log, 'local server answers again');
    if (!result.up && before !== 'down') {
      if (result.misconfigured)
        this.options.logger?.error(
          { ...log, reason: result.error },
          'local server is misconfigured; routing skips it until its config is fixed',
        );
      else
        this.options.logger?.warn({ ...log, reason: result.error }, 'local server is down; routing skips it');
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probeShared(), delay);
    this.timer.unref();
  }

  private async probe(): Promise<ProbeResult> {
    const listed = await this.getList(`${this.basePath}/models`, openAiIds);
    if (listed.kind === 'list') return { up: true, models: listed.ids };
    if (listed.kind === 'unreachable') return { up: false, error: listed.reason };
    const onV1 = /\/v1$/.test(this.basePath);
    // A base URL without `/v1` that has an OpenAI model list below `/v1`, or Ollama's native list
    // right there, is the server's root, where its OpenAI-compatible endpoints are not (its
    // `POST /chat/completions` is a 404). Serving would fail every request while looking healthy,
    // so it is skipped and says what to change. (llama.cpp's server answers at its root too: it
    // lists at `/models` and is never taken for this.)
    if (!onV1 && listed.kind === 'unlisted' && !listed.tooLarge) {
      const below = await this.getList(`${this.basePath}/v1/models`, openAiIds);
      if (below.kind === 'list') return AT_ROOT;
    }
    if (this.options.nativeTagsPath) {
      // Below the server's root, beside `/v1`: `http://host:11434/v1` -> `/api/tags`.
      const root = this.basePath.replace(/\/v1$/, '');
      const tags = await this.getList(`${root}${this.options.nativeTagsPath}`, ollamaTagIds);
      if (tags.kind === 'list') return onV1 ? { up: true, models: tags.ids } : AT_ROOT;
    }
    // It answers HTTP but will not serve now (a model still loading answers 503).
    if (listed.kind === 'server-error') return { up: false, error: listed.reason };
    if (listed.tooLarge && !this.toldTooLarge) {
      this.toldTooLarge = true;
      this.options.logger?.warn(
        { backend: this.options.backend, limitBytes: MAX_LIST_BYTES },
        'local server: its model list is too large to read; requests are forwarded without checking it',
      );
    }
    return { up: true, models: undefined };
  }

  private async getList(path: string, read: (body: unknown) => string[] | undefined): Promise<ListAnswer> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: 'GET',
        path,
        headers: { ...this.options.headers, accept: 'application/json' },
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      return { kind: 'unreachable', reason: transportReason(error, this.options.timeoutMs) };
    }
    if (response.statusCode >= 500) {
      await response.body.dump();
      return { kind: 'server-error', reason: `its model list answered with status ${response.statusCode}` };
    }
    if (response.statusCode >= 300) {
      await response.body.dump();
      return { kind: 'unlisted' };
    }
    try {
      // One byte past the limit tells a list that is too large; the rest is never read (the
      // connection is dropped), so an endless or huge answer costs at most this much memory.
      const bytes = await readLimited(response.body, MAX_LIST_BYTES + 1);
      if (bytes.length > MAX_LIST_BYTES) {
        response.body.destroy();
        return { kind: 'unlisted', tooLarge: true };
      }
      const ids = read(JSON.parse(bytes.toString('utf8')));
      return ids ? { kind: 'list', ids } : { kind: 'unlisted' };
    } catch (error) {
      if (isTransportError(error))
        return { kind: 'unreachable', reason: transportReason(error, this.options.timeoutMs) };
      return { kind: 'unlisted' };
    }
  }
}

/** `{ data: [{ id }] }` (OpenAI's list, which all four servers answer on /v1/models). */
function openAiIds(body: unknown): string[] | undefined {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return undefined;
  return data
    .map((model) => (model as { id?: unknown } | null)?.id)
    .filter((id): id is string => typeof id === 'string' && id !== '');
}

/** Ollama's `{ models: [{ name, model }] }`; `name` is what its /v1 endpoints take (`llama3:latest`). */
function ollamaTagIds(body: unknown): string[] | undefined {
  const models = (body as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) return undefined;
  return models
    .map((model) => {
      const entry = model as { name?: unknown; model?: unknown } | null;
      return typeof entry?.name === 'string' ? entry.name : entry?.model;
    })
    .filter((id): id is string => typeof id === 'string' && id !== '');
}

function isTransportError(error: unknown): boolean {
  return (
    error instanceof undiciErrors.UndiciError || (error as { code?: unknown } | null)?.code !== undefined
  );
}

/** Why a probe got no answer, without the address (the state is shown on /readyz, which is public). */
function transportReason(error: unknown, timeoutMs: number): string {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'its host name does not resolve';
  if (
    name === 'TimeoutError' ||
    error instanceof undiciErrors.ConnectTimeoutError ||
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError
  )
    return `no answer within ${timeoutMs} ms`;
  return typeof code === 'string' ? `connection failed (${code})` : 'connection failed';
}
