import type { Readable } from 'node:stream';
import type { StoppedUsage } from './stopped-usage.js';

/**
 * The seam between the gateway and a provider. Adapters speak the OpenAI wire format at
 * this edge: they receive an OpenAI-shaped request body and answer with OpenAI-shaped bytes
 * (JSON, SSE, or binary for audio). Translation for non-OpenAI providers (Anthropic, an
 * in-process llama.cpp model, user modules) lives inside the adapter, never in routes.
 */
export type JsonEndpoint =
  | 'chat.completions'
  | 'completions'
  | 'embeddings'
  | 'responses'
  /** Anthropic's Messages API (`/v1/messages`); its path is below Anthropic's base URL. */
  | 'messages'
  /** Anthropic's `/v1/messages/count_tokens`: the prompt's size, nothing generated. */
  | 'messages.count_tokens'
  | 'images.generations'
  | 'moderations'
  | 'audio.speech';

/** Endpoints whose request body is multipart and streamed through, never parsed whole. */
export type UploadEndpoint = 'audio.transcriptions' | 'audio.translations';

export type Endpoint = JsonEndpoint | UploadEndpoint;

/** Path below the OpenAI base URL (`.../v1`) for each endpoint. */
export const ENDPOINT_PATHS: Readonly<Record<Endpoint, string>> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
  messages: '/messages',
  'messages.count_tokens': '/messages/count_tokens',
  'images.generations': '/images/generations',
  moderations: '/moderations',
  'audio.speech': '/audio/speech',
  'audio.transcriptions': '/audio/transcriptions',
  'audio.translations': '/audio/translations',
};

/**
 * The largest JSON answer the gateway reads whole (to count its usage, cache it, relay it in one
 * write); a larger one is an upstream failure. Adapters that gather answers themselves use it too.
 */
export const MAX_JSON_ANSWER_BYTES = 256 * 1024 * 1024;

interface CallBase {
  /** Upstream model name, already resolved by the router. */
  model: string;
  /** The name the client asked for (`local/llama3` where `model` is `llama3`), for its messages. */
  publicModel?: string | undefined;
  signal: AbortSignal;
  requestId: string;
}

export interface JsonCall extends CallBase {
  kind: 'json';
  endpoint: JsonEndpoint;
  /** The client's body with `model` rewritten; unknown fields untouched. */
  body: Record<string, unknown>;
  stream: boolean;
  /**
   * Client headers the upstream's protocol needs, lower-cased: on `messages` calls the client's
   * `anthropic-version` and `anthropic-beta`. Never credentials.
   */
  headers?: Readonly<Record<string, string>>;
}

export interface UploadCall extends CallBase {
  kind: 'upload';
  endpoint: UploadEndpoint;
  /** Includes the multipart boundary. */
  contentType: string;
  body: Readable;
}

export type BackendCall = JsonCall | UploadCall;

/** A 2xx answer. Non-2xx answers are thrown as GatewayErrors by the adapter. */
export interface BackendResponse {
  status: number;
  contentType: string;
  /** Response headers worth relaying to the client (never credentials). */
  headers: Record<string, string>;
  body: AsyncIterable<Buffer> | Iterable<Buffer>;
  /**
   * True when the usage in this answer was counted by the backend, not reported by the model
   * behind it (a translation whose upstream reported none): the gateway records it as estimated.
   * Asked once the answer has been read.
   */
  usageCounted?: () => boolean;
  /**
   * For a stream stopped before its usage event (its client left, shutdown cut it): what the
   * backend's model used until it stopped, when the backend knows it exactly (an in-process
   * model counts the prompt it evaluated and the tokens it generated). The gateway charges and
   * records that, not estimated, instead of counting what it relayed. Asked once, after the
   * stream was stopped. Absent, or undefined (the model had not begun on the prompt): the gateway
   * counts as before. HTTP upstreams cannot say; a module's answer is not asked.
   */
  partialUsage?: () => StoppedUsage | undefined;
}

export interface Backend {
  readonly name: string;
  readonly type: string;
  supports(endpoint: Endpoint): boolean;
  send(call: BackendCall): Promise<BackendResponse>;
  /** Model ids the upstream offers (for `*` routes in /v1/models); [] when it cannot say. */
  listModels(signal: AbortSignal): Promise<string[]>;
  /** Resolves when the backend is reachable; rejects with the reason otherwise. */
  checkHealth(signal: AbortSignal): Promise<void>;
  /**
   * Known not to take requests right now (a model still loading, a local server its last probe
   * found down): how long until it is worth asking again. Routing skips such a backend the way it
   * skips an open circuit. Absent or undefined: usable.
   */
  unavailableForMs?(): number | undefined;
  /**
   * The exact prompt size of a chat request (`messages`, `tools`) as this backend's model would
   * read it, when it can say without generating (an in-process model: its tokenizer and chat
   * template). Anthropic's `count_tokens` uses it; without it the gateway estimates.
   */
  countChatTokens?(model: string, body: Record<string, unknown>): Promise<number>;
  close(): Promise<void>;
}
