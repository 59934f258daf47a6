// Section 9's baseline: node-llama-cpp called directly, in this process, with no gateway. Forked
// fresh for every measurement like the load generator (one job in, one result out over IPC).
// It does what any program serving a chat answer with node-llama-cpp must do per request, as
// cheaply as the library allows: render the chat with the model's template and tokenize it,
// clear the sequence, evaluate the prompt, then sample token by token (greedy) and turn each
// token into text (lib/llama-library.mjs). The gateway does all of that too; what it does
// besides is its overhead.
//
// With `via: 'adapter'` (or 'adapterStream') the same requests go instead to the gateway's own
// llama-cpp backend (dist/backends/llama-cpp, as the registry builds it), called in this process
// without HTTP, routing or auth: it splits the gateway's overhead into the adapter's share
// (sampling checks, stop matching, answer shaping, SSE encoding) and the rest of the gateway's.
//
// Jobs:
//   { kind: 'probe', ...model }  loads the library and the model, answers one request: tells
//                                whether node-llama-cpp can run here at all (a result, never a throw)
//   { kind: 'direct', via, ...model, blocks, requests, warmup }  timed requests, block by block
// where model = { modelPath, threads, contextSize, messages }.
import { loadLlama } from './llama-library.mjs';

/** @typedef {import('./llama-library.mjs').ModelSpec} ModelSpec */
/**
 * @typedef {object} DirectBlock
 * @property {string} label
 * @property {number} maxTokens
 */
/**
 * @typedef {object} BlockResult
 * @property {number[]} latencyMs one per timed request, from the call to the last token's text
 * @property {number} cpuMs this process's CPU (all threads, llama.cpp's included) over the block
 * @property {number} wallMs
 * @property {number} tokens tokens generated per request (the last request's)
 * @property {string} text the last request's answer
 */

/** @returns {number} */
function processCpuMs() {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/**
 * The gateway's llama-cpp backend on the same model, called as the gateway's pipeline calls it.
 * Timing covers send() and reading the whole body; the answer is parsed only for checking.
 * @param {ModelSpec} spec
 * @param {boolean} stream
 */
async function loadAdapter(spec, stream) {
  const dist = new URL('../../dist/', import.meta.url);
  const { createLlamaCppBackend } = await import(
    new URL('backends/llama-cpp/create-llama-cpp-backend.js', dist).href
  );
  const { llamaCppBackendSchema } = await import(new URL('config/llama-cpp-schema.js', dist).href);
  const { pino } = await import('pino');
  // The gateway logs at info; the backend writes nothing at that level for a request that found a slot.
  const logger = pino({ level: 'info' }, pino.destination('/dev/null'));
  const config = llamaCppBackendSchema.parse({
    type: 'llama-cpp',
    model: spec.modelPath,
    contextSize: spec.contextSize,
    threads: spec.threads,
    slots: 1,
    queue: 16,
  });
  const backend = await createLlamaCppBackend('local', config, logger);
  await backend.loaded;
  /** @param {number} maxTokens */
  const answer = async (maxTokens) => {
    const response = await backend.send({
      kind: 'json',
      endpoint: 'chat.completions',
      model: 'tiny',
      body: {
        model: 'tiny',
        messages: spec.messages,
        max_tokens: maxTokens,
        temperature: 0,
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      },
      stream,
      signal: new AbortController().signal,
      requestId: 'bench',
    });
    /** @type {Buffer[]} */
    const chunks = [];
    for await (const chunk of response.body) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    return { raw };
  };
  return { answer };
}

/**
 * Text and completion tokens of an adapter's answer (outside the timed part).
 * @param {string} raw
 * @param {boolean} stream
 */
function readAdapterAnswer(raw, stream) {
  if (!stream) {
    const json = JSON.parse(raw);
    return { text: String(json.choices?.[0]?.message?.content ?? ''), tokens: json.usage?.completion_tokens };
  }
  let text = '';
  let tokens = Number.NaN;
  for (const event of raw.split('\n\n')) {
    if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
    const chunk = JSON.parse(event.slice('data: '.length));
    text += chunk.choices?.[0]?.delta?.content ?? '';
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { text, tokens };
}

/**
 * @param {ModelSpec & { kind: 'probe', maxTokens: number }} job
 */
async function probe(job) {
  const started = performance.now();
  const loaded = await loadLlama(job);
  if ('unavailable' in loaded) return { unavailable: loaded.unavailable, processCpuMs: processCpuMs() };
  const loadMs = performance.now() - started;
  const result = await loaded.answer(job.maxTokens);
  return { ...loaded.info, loadMs, ...result, processCpuMs: processCpuMs() };
}

/**
 * @param {ModelSpec & { kind: 'direct', via: 'library' | 'adapter' | 'adapterStream', blocks: DirectBlock[],
 *   requests: number, warmup: number }} job
 */
async function direct(job) {
  const stream = job.via === 'adapterStream';
  /** @type {{ answer: (maxTokens: number) => Promise<{ raw?: string, text?: string, tokens?: number }> }} */
  let loaded;
  if (job.via === 'library') {
    const library = await loadLlama(job);
    if ('unavailable' in library) throw new Error(library.unavailable);
    loaded = library;
  } else loaded = await loadAdapter(job, stream);
  // Untimed warm-up of every block first: JIT and allocations, as the long-running gateway has them.
  for (const block of job.blocks)
    for (let index = 0; index < job.warmup; index += 1) await loaded.answer(block.maxTokens);
  /** @type {Record<string, BlockResult>} */
  const blocks = {};
  for (const block of job.blocks) {
    const latencyMs = [];
    /** @type {{ raw?: string, text?: string, tokens?: number }} */
    let last = {};
    const cpuBefore = processCpuMs();
    const startedAt = performance.now();
    for (let index = 0; index < job.requests; index += 1) {
      const begin = performance.now();
      last = await loaded.answer(block.maxTokens);
      latencyMs.push(performance.now() - begin);
    }
    const cpuMs = processCpuMs() - cpuBefore;
    const wallMs = performance.now() - startedAt;
    const checked = last.raw === undefined ? last : readAdapterAnswer(last.raw, stream);
    blocks[block.label] = {
      latencyMs,
      cpuMs,
      wallMs,
      tokens: checked.tokens ?? Number.NaN,
      text: checked.text ?? '',
    };
  }
  return { blocks, processCpuMs: processCpuMs() };
}

/** @param {{ kind: string }} job */
function runJob(job) {
  if (job.kind === 'probe') return probe(/** @type {Parameters<typeof probe>[0]} */ (job));
  if (job.kind === 'direct') return direct(/** @type {Parameters<typeof direct>[0]} */ (job));
  return Promise.reject(new Error(`unknown job ${JSON.stringify(job)}`));
}

// The parent going away (crash, SIGKILL) closes the IPC channel: do not linger as an orphan.
process.on('disconnect', () => process.exit(1));
process.once('message', (/** @type {{ kind: string }} */ job) => {
  runJob(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (error) => process.send?.({ ok: false, error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
