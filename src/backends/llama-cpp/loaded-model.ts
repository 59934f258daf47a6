import { randomInt } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type {
  ChatModelFunctions,
  ChatWrapper,
  ChatWrapperGenerateContextStateOptions,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaGrammar,
  LlamaModel,
  Token,
} from 'node-llama-cpp';
import type { LlamaCppConfig } from '../../config/llama-cpp-schema.js';
import { InvalidRequestError } from '../../errors.js';
import { withFiniteNumbers } from './finite-number-grammar.js';
import type { GenerationPlan, Sampling } from './generate-tokens.js';
import { checkGgufHeader } from './gguf-header.js';
import type { NodeLlamaCpp } from './load-node-llama-cpp.js';
import type { ModelFile } from './model-files.js';
import { QueueWaitHistogram } from './queue-wait-histogram.js';
import type { OutputFormat, SamplingRequest } from './sampling-request.js';
import { type SlotLease, SlotQueue } from './slot-queue.js';
import { type ThreadClaim, threadBudget } from './thread-budget.js';
import { biasOf } from './token-bias.js';
import { TokenFloor } from './token-floor.js';

/** llama.cpp's seeds are 32-bit. */
const SEEDS = 2 ** 32;

/**
 * One GGUF model in memory: its context with one sequence per slot, the queue in front of the
 * slots, its chat template, and (created on first use) an embedding context.
 */
export class LoadedModel {
  readonly queue: SlotQueue<LlamaContextSequence>;
  readonly waits: QueueWaitHistogram;
  /** Token ids run from 0 to this (exclusive); llama.cpp does not check a client's ids itself. */
  readonly vocabularySize: number;
  /** The fewest tokens a text can become; undefined for a vocabulary that gives no such floor. */
  private readonly floor: TokenFloor | undefined;
  private embeddingContext: Promise<LlamaEmbeddingContext> | undefined;
  private jsonGrammar: Promise<LlamaGrammar> | undefined;

  private constructor(
    readonly id: string,
    private readonly library: NodeLlamaCpp,
    private readonly llama: Llama,
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly chatWrapper: ChatWrapper,
    private readonly config: LlamaCppConfig,
    backendName: string,
    private readonly threadClaim: ThreadClaim,
  ) {
    const sequences = Array.from({ length: config.slots }, () => context.getSequence());
    this.queue = new SlotQueue(sequences, config.queue);
    const tokens = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer
      ?.ggml?.tokens;
    this.vocabularySize = Array.isArray(tokens) ? tokens.length : 0;
    this.floor = TokenFloor.of(library, model);
    this.waits = new QueueWaitHistogram(backendName, id);
    this.waits.register();
  }

  static async load(
    file: ModelFile,
    config: LlamaCppConfig,
    runtime: { library: NodeLlamaCpp; llama: Llama },
    backendName: string,
    logger: FastifyBaseLogger,
    signal: AbortSignal,
  ): Promise<LoadedModel> {
    const started = performance.now();
    await checkGgufHeader(file.path);
    const model = await runtime.llama.loadModel({
      modelPath: file.path,
      gpuLayers: config.gpuLayers,
      loadSignal: signal,
    });
    let threads: ThreadClaim | undefined;
    try {
      const context = await model.createContext({
        contextSize: Math.min(config.contextSize, model.trainContextSize || config.contextSize),
        createSignal: signal,
        sequences: config.slots,
        threads: config.threads,
        // The gateway's own queue is first come, first served; llama.cpp's batches follow it.
        batching: { itemPrioritizationStrategy: 'firstInFirstOut' },
      });
      const chatWrapper = runtime.library.resolveChatWrapper(model);
      threads = threadBudget.claim(backendName, file.id, config.threads, logger);
      const loaded = new LoadedModel(
        file.id,
        runtime.library,
        runtime.llama,
        model,
        context,
        chatWrapper,
        config,
        backendName,
        threads,
      );
      logger.info(
        {
          backend: backendName,
          model: file.id,
          chat_template: chatWrapper.wrapperName,
          context_size: context.contextSize,
          slots: config.slots,
          threads: config.threads,
          load_ms: Math.round(performance.now() - started),
        },
        'llama-cpp model loaded',
      );
      return loaded;
    } catch (error) {
      threads?.release();
      await model.dispose();
      throw error;
    }
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  get dimensions(): number {
    return this.model.embeddingVectorSize;
  }

  acquire(signal: AbortSignal): Promise<SlotLease<LlamaContextSequence>> {
    return this.queue.acquire(signal);
  }

  /**
   * The chat rendered by the model's own template, as the tokens that will be evaluated; with
   * `functions`, the template (or node-llama-cpp's wrapper for it) shows the model the tools.
   */
  chatPrompt(
    history: ChatWrapperGenerateContextStateOptions['chatHistory'],
    functions: ChatModelFunctions | undefined,
    param: string,
  ): {
    tokens: Token[];
    tokenStops: Token[][];
    stops: string[];
  } {
    const state = this.chatWrapper.generateContextState({
      chatHistory: history,
      ...(functions ? { availableFunctions: functions, documentFunctionParams: true } : {}),
    });
    this.refuseUnfitting(this.floor?.ofPrompt(state.contextText), param);
    const tokenStops: Token[][] = [];
    const stops: string[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      // Plain text ends the answer as a stop sequence would; special tokens by their ids.
      if (trigger.values.every((value) => typeof value === 'string')) stops.push(trigger.toString());
      else tokenStops.push(trigger.tokenize(this.model.tokenizer));
    }
    return { tokens: state.contextText.tokenize(this.model.tokenizer), tokenStops, stops };
  }

  /** A raw prompt (text or token ids) as evaluated: with BOS when the model's tokenizer adds it. */
  rawPrompt(prompt: string | number[]): Token[] {
    if (typeof prompt === 'string') this.refuseUnfitting(this.floor?.ofText(prompt), 'prompt');
    const tokens =
      typeof prompt === 'string' ? this.model.tokenize(prompt, false) : this.knownTokens(prompt, 'prompt');
    const bos = this.model.tokens.bos;
    if (this.model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) return [bos, ...tokens];
    if (tokens.length === 0) throw new InvalidRequestError("'prompt' is empty.", 'prompt');
    return tokens;
  }

  /**
   * Refuses a prompt whose floor (the fewest tokens it can become) already fills the context,
   * before it is tokenized: what is tokenized is then bounded by the context, whatever the body.
   */
  private refuseUnfitting(floor: number | undefined, param: string): void {
    if (floor === undefined || floor < this.contextSize) return;
    throw new InvalidRequestError(
      `This model's maximum context length is ${this.contextSize} tokens. However, you requested at least ${floor} tokens in the prompt. Shorten the prompt.`,
      param,
      'context_length_exceeded',
    );
  }

  /** Token ids from a request, checked: llama.cpp would read out of bounds on an unknown one. */
  private knownTokens(ids: readonly number[], param: string): Token[] {
    const size = this.vocabularySize;
    const unknown = ids.find((id) => id >= size);
    if (unknown !== undefined)
      throw new InvalidRequestError(
        `'${param}': token id ${unknown} is not in this model's vocabulary (ids 0 to ${size - 1}).`,
        param,
      );
    return ids as Token[];
  }

  /** The request's sampling, with its max_tokens checked against what the context can hold. */
  async plan(
    request: SamplingRequest,
    prompt: { tokens: Token[]; tokenStops: Token[][]; stops: string[] },
    promptParam: string,
  ): Promise<GenerationPlan> {
    const room = this.contextSize - prompt.tokens.length;
    if (room < 1 || (request.maxTokens !== undefined && request.maxTokens > room)) {
      const asked = request.maxTokens !== undefined ? `, and ${request.maxTokens} for the answer` : '';
      throw new InvalidRequestError(
        `This model's maximum context length is ${this.contextSize} tokens. However, you requested ${prompt.tokens.length} tokens in the prompt${asked}. Shorten the prompt or lower ${request.maxTokensParam}.`,
        request.maxTokens !== undefined && room >= 1 ? request.maxTokensParam : promptParam,
        'context_length_exceeded',
      );
    }
    for (const token of request.logitBias.keys()) {
      if (!Number.isInteger(token) || token >= this.vocabularySize)
        throw new InvalidRequestError(
          `'logit_bias': token id ${token} is not in this model's vocabulary (ids 0 to ${this.vocabularySize - 1}).`,
          'logit_bias',
        );
    }
    const sampling: Sampling = {
      temperature: request.temperature,
      topP: request.topP,
      // Without one, node-llama-cpp seeds with the current second: requests within the same
      // second would sample the very same answer. OpenAI's answers vary without a seed.
      seed: request.seed ?? randomInt(SEEDS),
      tokenBias: biasOf(this.library, this.model, request.logitBias),
      grammar: await this.grammarFor(request.format),
    };
    return {
      promptTokens: prompt.tokens,
      maxTokens: Math.min(request.maxTokens ?? this.config.maxTokens ?? room, room),
      sampling,
      stops: [...request.stops, ...prompt.stops],
      tokenStops: prompt.tokenStops,
      endsWithJson: request.format.kind !== 'text',
    };
  }

  private async grammarFor(format: OutputFormat): Promise<LlamaGrammar | undefined> {
    if (format.kind === 'text') return undefined;
    if (format.kind === 'json') {
      this.jsonGrammar ??= this.llama
        .getGrammarFor('json')
        .then((json) => withFiniteNumbers(this.llama, json));
      return this.jsonGrammar;
    }
    try {
      return await withFiniteNumbers(
        this.llama,
        await this.llama.createGrammarForJsonSchema(
          format.schema as Parameters<Llama['createGrammarForJsonSchema']>[0],
        ),
      );
    } catch (error) {
      const [what, param] =
        format.kind === 'tool_call'
          ? ["The tools' 'parameters' schemas", 'tools']
          : ["'response_format.json_schema.schema'", 'response_format'];
      throw new InvalidRequestError(
        `${what} cannot be turned into a grammar: ${(error as Error).message}`,
        param,
      );
    }
  }

  grammarState(grammar: LlamaGrammar) {
    return new this.library.LlamaGrammarEvaluationState({ model: this.model, grammar });
  }

  /** Tokens an embedding input is evaluated as (BOS/EOS added as node-llama-cpp adds them). */
  embeddingTokens(input: string | number[]): Token[] {
    const floor = typeof input === 'string' ? this.floor?.ofText(input) : undefined;
    // Unlike a prompt, an input may fill the whole context (see embed).
    if (floor !== undefined && floor > this.contextSize)
      throw new InvalidRequestError(
        `This model's maximum context length is ${this.contextSize} tokens, and an input has at least ${floor}.`,
        'input',
        'context_length_exceeded',
      );
    const tokens =
      typeof input === 'string' ? this.model.tokenize(input, false) : [...this.knownTokens(input, 'input')];
    const { tokens: special, vocabularyType } = this.model;
    const begin = vocabularyType === 'wpm' ? special.bos : special.shouldPrependBosToken ? special.bos : null;
    const end =
      vocabularyType === 'wpm'
        ? special.sep
        : vocabularyType === 'ugm'
          ? special.eos
          : special.shouldAppendEosToken
            ? special.eos
            : null;
    if (vocabularyType !== 'rwkv' && vocabularyType !== 'ugm' && begin !== null && tokens[0] !== begin)
      tokens.unshift(begin);
    if (vocabularyType !== 'rwkv' && end !== null && tokens.at(-1) !== end) tokens.push(end);
    return tokens;
  }

  /** The model's pooled embedding of already-prepared tokens (not normalised). */
  async embed(tokens: Token[]): Promise<readonly number[]> {
    if (tokens.length > this.contextSize)
      throw new InvalidRequestError(
        `This model's maximum context length is ${this.contextSize} tokens, and an input has ${tokens.length}.`,
        'input',
        'context_length_exceeded',
      );
    this.embeddingContext ??= this.model.createEmbeddingContext({
      // node-llama-cpp keeps a sequence's last cell free for a next token, which an embedding
      // never generates: one more cell lets an input fill the context size it is told.
      contextSize: this.contextSize + 1,
      threads: this.config.threads,
    });
    const context = await this.embeddingContext;
    return (await context.getEmbeddingFor(tokens)).vector;
  }

  async dispose(): Promise<void> {
    this.waits.unregister();
    this.threadClaim.release();
    const embedding = this.embeddingContext;
    this.embeddingContext = undefined;
    if (embedding) await embedding.then((context) => context.dispose()).catch(() => {});
    await this.context.dispose();
    await this.model.dispose();
  }
}
