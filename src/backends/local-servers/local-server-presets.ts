import type { LocalServerType } from '../../config/local-server-schema.js';

/** What a local server can do; `capabilities` in the backend's config overrides any of these. */
export interface Capabilities {
  responses: boolean;
  embeddings: boolean;
  tools: boolean;
  streamUsage: boolean;
}

export interface LocalServerPreset {
  /** For messages: the server's own name. */
  label: string;
  capabilities: Capabilities;
  /** Ollama's native model list, read when `/v1/models` does not answer with one. */
  nativeTagsPath?: string;
}

/**
 * Defaults from each server's documentation as of late 2026; where a feature is recent or needs
 * a launch flag, the default is the one that works with older builds too (the gateway then
 * translates or counts) and the table in the README says how to opt in.
 */
export const LOCAL_SERVER_PRESETS: Readonly<Record<LocalServerType, LocalServerPreset>> = {
  // docs.ollama.com/api/openai-compatibility: tools, stream_options.include_usage and
  // /v1/embeddings are listed. /v1/responses is listed too, but only in recent releases, so it is
  // off by default (conservative: requests are translated to chat, which every version serves).
  ollama: {
    label: 'Ollama',
    capabilities: { responses: false, embeddings: true, tools: true, streamUsage: true },
    nativeTagsPath: '/api/tags',
  },
  // docs.vllm.ai "Online Serving": Completions, Chat, Responses (/v1/responses) and Embeddings
  // (embedding models only); usage on streams with stream_options.include_usage. Tool calls need
  // --enable-auto-tool-choice, without which vLLM answers its own 400.
  vllm: {
    label: 'vLLM',
    capabilities: { responses: true, embeddings: true, tools: true, streamUsage: true },
  },
  // llama.cpp server: no /v1/responses (ggml-org/llama.cpp#14702: 404; #19138 still open);
  // usage in the last chunk when include_usage is asked (ggml-org/llama.cpp#22081); embeddings
  // need --embeddings and tools --jinja, else the server answers its own error.
  'llamacpp-server': {
    label: 'llama.cpp server',
    capabilities: { responses: false, embeddings: true, tools: true, streamUsage: true },
  },
  // lmstudio.ai/docs/api/openai-api: /v1/responses, chat, completions, embeddings; tools since
  // 0.3.6. Streams carry no usage and stream_options is not honoured
  // (lmstudio-ai/lmstudio-bug-tracker#713, open), so the gateway counts.
  lmstudio: {
    label: 'LM Studio',
    capabilities: { responses: true, embeddings: true, tools: true, streamUsage: false },
  },
};
