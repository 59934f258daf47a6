// node-llama-cpp loaded as the gateway loads it, and one chat answer done as cheaply as the
// library allows: what section 9's baselines (lib/llama-direct.mjs in process, lib/llama-http-floor.mjs
// behind node:http) do per request, and what the gateway does too.

/**
 * @typedef {object} ModelSpec
 * @property {string} modelPath
 * @property {number} threads
 * @property {number} contextSize
 * @property {Array<{ role: 'system' | 'user', content: string }>} messages
 */
/**
 * @typedef {object} AnswerOptions
 * @property {Array<{ role: string, content: string }>} [messages] instead of the spec's
 * @property {(text: string) => void} [onText] each token's text, as it is generated
 */
/**
 * @typedef {object} LoadedLlama
 * @property {(maxTokens: number, options?: AnswerOptions) => Promise<{ text: string, tokens: number,
 *   promptTokens: number }>} answer
 * @property {{ chatWrapper: string, contextSize: number, nodeLlamaCpp: string }} info
 */

/**
 * Loads the library and the model with one sequence. Never throws for a library that cannot run
 * here: resolves `{ unavailable }` instead.
 * @param {ModelSpec} spec
 * @returns {Promise<LoadedLlama | { unavailable: string }>}
 */
export async function loadLlama(spec) {
  /** @type {typeof import('node-llama-cpp')} */
  let library;
  try {
    library = await import('node-llama-cpp');
  } catch (error) {
    return { unavailable: `node-llama-cpp is not installed (${String(error)})` };
  }
  /** @type {import('node-llama-cpp').Llama} */
  let llama;
  try {
    // As the gateway loads it (src/backends/llama-cpp/load-node-llama-cpp.ts): the prebuilt CPU
    // binding, never a download or a build.
    llama = await library.getLlama({
      gpu: false,
      build: 'never',
      progressLogs: false,
      logLevel: library.LlamaLogLevel.warn,
    });
  } catch (error) {
    return { unavailable: `node-llama-cpp could not load its llama.cpp binding (${String(error)})` };
  }
  const model = await llama.loadModel({ modelPath: spec.modelPath, gpuLayers: 0 });
  // The same context as the gateway's LoadedModel with one slot.
  const context = await model.createContext({
    contextSize: Math.min(spec.contextSize, model.trainContextSize || spec.contextSize),
    sequences: 1,
    threads: spec.threads,
    batching: { itemPrioritizationStrategy: 'firstInFirstOut' },
  });
  const sequence = context.getSequence();
  const wrapper = library.resolveChatWrapper(model);

  /**
   * One chat answer of at most `maxTokens` tokens at temperature 0.
   * @param {number} maxTokens
   * @param {AnswerOptions} [options]
   */
  const answer = async (maxTokens, options = {}) => {
    /** @type {import('node-llama-cpp').ChatHistoryItem[]} */
    const history = (options.messages ?? spec.messages).map((message) =>
      message.role === 'system'
        ? { type: 'system', text: message.content }
        : { type: 'user', text: message.content },
    );
    history.push({ type: 'model', response: [] });
    const state = wrapper.generateContextState({ chatHistory: history });
    const prompt = state.contextText.tokenize(model.tokenizer);
    await sequence.clearHistory();
    const iterator = sequence.evaluate(prompt, { temperature: 0 });
    /** @type {import('node-llama-cpp').Token[]} */
    const generated = [];
    let text = '';
    try {
      while (generated.length < maxTokens) {
        const next = await iterator.next();
        if (next.done) break;
        const token = next.value;
        generated.push(token);
        if (model.isEogToken(token)) break;
        // The previous tokens as context, so a SentencePiece word start detokenizes as in a stream.
        const piece = model.detokenize([token], false, generated.slice(-9, -1));
        text += piece;
        options.onText?.(piece);
      }
    } finally {
      await iterator.return(undefined);
    }
    return { text, tokens: generated.length, promptTokens: prompt.length };
  };
  return {
    answer,
    info: {
      chatWrapper: wrapper.wrapperName,
      contextSize: context.contextSize,
      nodeLlamaCpp: await libraryVersion(),
    },
  };
}

async function libraryVersion() {
  try {
    // The package's exports hide its package.json: find it from the entry point.
    const { readFileSync } = await import('node:fs');
    const entry = new URL(import.meta.resolve('node-llama-cpp'));
    const manifest = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8'));
    return String(manifest.version);
  } catch {
    return 'unknown';
  }
}
