// A Tollgate backend module: chat completions answered by a plain JavaScript function.
//
// Configure it (paths are relative to the config file):
//
//   backends:
//     echo:
//       type: module
//       module: ./examples/backends/echo-function.mjs
//       options: { shout: false }
//   models:
//     echo: { backend: echo }
//
// The gateway calls the default export once at boot with the backend's name, its `options` and
// a context ({ logger, configDir, signal }), and uses the object it returns as a Backend: it
// sends OpenAI-shaped requests to `send` and relays what it answers (OpenAI-shaped bytes) to the
// client. Anything this module throws, or an answer that breaks the contract, reaches the client
// as an OpenAI-shaped 502 (504 when it is too slow); the gateway keeps serving.
import { encodeDone, encodeEvent, InvalidRequestError } from 'tollgate';

/** The "model": any local function from a prompt to a reply. This one echoes, or shouts. */
function reply(prompt, options) {
  return options.shout ? prompt.toUpperCase() : prompt;
}

/** This function's own token count: words. A real model counts with its tokenizer. */
function countTokens(text) {
  return text.split(/\s+/).filter(Boolean).length;
}

function lastUserText(body) {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const last = messages.findLast((message) => message?.role === 'user');
  const content = last?.content;
  if (typeof content === 'string') return content;
  // Content parts: keep the text ones.
  if (Array.isArray(content)) return content.map((part) => (part?.type === 'text' ? part.text : '')).join('');
  return undefined;
}

function usageOf(prompt, text) {
  const prompt_tokens = countTokens(prompt);
  const completion_tokens = countTokens(text);
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
}

/** Yields one SSE chunk per word; stops as soon as the client has gone (the signal aborts). */
async function* streamWords({ id, created, model, prompt, text, includeUsage, signal }) {
  const base = { id, object: 'chat.completion.chunk', created, model };
  yield encodeEvent({
    ...base,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
  });
  for (const piece of text.match(/\S+\s*|\s+/g) ?? []) {
    signal.throwIfAborted();
    yield encodeEvent({ ...base, choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] });
  }
  yield encodeEvent({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
  if (includeUsage) yield encodeEvent({ ...base, choices: [], usage: usageOf(prompt, text) });
  yield encodeDone();
}

export default function createBackend(name, options, { logger }) {
  logger.info({ shout: options.shout === true }, 'echo-function backend ready');
  return {
    supports: (endpoint) => endpoint === 'chat.completions',

    async send({ endpoint, model, body, stream, signal }) {
      // The gateway only sends what supports() accepts; checked anyway, as any adapter does.
      if (endpoint !== 'chat.completions')
        throw new InvalidRequestError(`${name} serves chat completions only.`);
      const prompt = lastUserText(body);
      // A refusal the client should see as a 400: throw one of the package's GatewayErrors.
      if (prompt === undefined) throw new InvalidRequestError('This model needs a user message.', 'messages');
      const text = reply(prompt, options);
      const id = `chatcmpl-${crypto.randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      if (stream) {
        const includeUsage = body.stream_options?.include_usage === true;
        return {
          status: 200,
          contentType: 'text/event-stream; charset=utf-8',
          headers: {},
          // Strings are fine: the gateway turns them into Buffers.
          body: streamWords({ id, created, model, prompt, text, includeUsage, signal }),
        };
      }
      return {
        status: 200,
        contentType: 'application/json',
        headers: {},
        body: [
          JSON.stringify({
            id,
            object: 'chat.completion',
            created,
            model,
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: text, refusal: null },
                logprobs: null,
                finish_reason: 'stop',
              },
            ],
            usage: usageOf(prompt, text),
          }),
        ],
      };
    },

    // Optional: model ids for `*` routes in /v1/models, a health check for /readyz, cleanup.
    listModels: async () => ['echo-function'],
    checkHealth: async () => {},
    close: async () => {},
  };
}
