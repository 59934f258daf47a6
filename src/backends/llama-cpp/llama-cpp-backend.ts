import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import {
  BackendBusyError,
  EndpointNotSupportedError,
  InvalidRequestError,
  ModelNotFoundError,
  ServiceUnavailableError,
} from '../../errors.js';
import type { Backend, BackendCall, BackendResponse, Endpoint, JsonCall } from '../backend.js';
import { encodeDone, encodeEvent } from '../sse-encoder.js';
import { ClientLeftMidAnswerError } from '../stopped-usage.js';
import { ClientAbortedError } from '../transport-failure.js';
import { type AnswerShape, tokenUsage } from './answer-shape.js';
import { autoToolAnswer } from './auto-tool-answer.js';
import { autoToolCalls } from './auto-tool-calls.js';
import { chatAnswer } from './chat-answer.js';
import { chatHistoryOf } from './chat-history.js';
import { completionAnswer } from './completion-answer.js';
import { embeddingList, readEmbeddingRequest, unitVector } from './embedding-request.js';
import {
  type GenerationPlan,
  type GenerationProgress,
  type GenerationResult,
  generateTokens,
} from './generate-tokens.js';
import type { LoadedModel } from './loaded-model.js';
import type { ModelFile } from './model-files.js';
import { readSamplingRequest, type SamplingRequest } from './sampling-request.js';
import { QueueFullError, type SlotLease } from './slot-queue.js';
import { checkedTokenIds, isNumberList } from './token-ids.js';
import { toolCallAnswer } from './tool-call-answer.js';
import { readToolRequest, type ToolRequest } from './tool-request.js';

const SUPPORTED: ReadonlySet<Endpoint> = new Set<Endpoint>(['chat.completions', 'completions', 'embeddings']);

/** How soon to ask again while a model loads. */
const LOADING_RETRY_MS = 1_000;
/** Every model failed to load: nothing will change until the gateway restarts with a fix. */
const FAILED_RETRY_MS = 60_000;

type Entry =
  | { state: 'loading'; file: ModelFile }
  | { state: 'ready'; file: ModelFile; model: LoadedModel }
  | { state: 'failed'; file: ModelFile; reason: string };

/** Loads one model file; `signal` aborts when the backend closes before it is done. */
export type ModelLoader = (file: ModelFile, signal: AbortSignal) => Promise<LoadedModel>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * GGUF models run in this process by node-llama-cpp. Models load in the background after
 * boot: until they are loaded, health checks fail ("loading") and routing skips the backend.
 * Each request holds one slot (a context sequence) of its model for as long as it generates;
 * the others wait in a bounded queue, and a full queue answers 429.
 */
export class LlamaCppBackend implements Backend {
  readonly type = 'llama-cpp';
  private readonly entries = new Map<string, Entry>();
  private readonly closing = new AbortController();
  /** Settles when every model has loaded or failed. */
  readonly loaded: Promise<void>;

  constructor(
    readonly name: string,
    files: readonly ModelFile[],
    private readonly logger: FastifyBaseLogger,
    load: ModelLoader,
  ) {
    for (const file of files) this.entries.set(file.id, { state: 'loading', file });
    this.loaded = this.loadAll(files, load);
  }

  private async loadAll(files: readonly ModelFile[], load: ModelLoader): Promise<void> {
    // One at a time: loading reads the whole file, and two at once only compete for the disk.
    for (const file of files) {
      try {
        if (this.closing.signal.aborted) return;
        const model = await load(file, this.closing.signal);
        if (this.closing.signal.aborted) {
          await model.dispose();
          return;
        }
        this.entries.set(file.id, { state: 'ready', file, model });
      } catch (error) {
        if (this.closing.signal.aborted) return;
        const reason = (error as Error).message;
        this.logger.error(
          { backend: this.name, model: file.id, path: file.path, error: { message: reason } },
          'llama-cpp model failed to load',
        );
        this.entries.set(file.id, { state: 'failed', file, reason });
      }
    }
  }

  /** The loaded model a request names; a backend with a single model serves it under any name. */
  model(name: string): LoadedModel {
    const entry =
      this.entries.get(name) ?? (this.entries.size === 1 ? [...this.entries.values()][0] : undefined);
    if (!entry) throw new ModelNotFoundError(name);
    if (entry.state === 'loading')
      throw new ServiceUnavailableError(`The model '${name}' is still loading; retry shortly.`);
    if (entry.state === 'failed')
      throw new ServiceUnavailableError(
        `The model '${name}' failed to load; the gateway's log says why.`,
        FAILED_RETRY_MS / 1_000,
      );
    return entry.model;
  }

  supports(endpoint: Endpoint): boolean {
    return SUPPORTED.has(endpoint);
  }

  /** The chat as the model's own template renders it, counted by its own tokenizer. */
  async countChatTokens(name: string, body: Record<string, unknown>): Promise<number> {
    const { functions } = readToolRequest(body);
    return this.model(name).chatPrompt(chatHistoryOf(body.messages), functions, 'messages').tokens.length;
  }

  async send(call: BackendCall): Promise<BackendResponse> {
    if (call.kind !== 'json' || !SUPPORTED.has(call.endpoint))
      throw new EndpointNotSupportedError(call.endpoint, call.model);
    const model = this.model(call.model);
    if (call.endpoint === 'embeddings') return this.embeddings(call, model);
    const requested = readSamplingRequest(call.body);
    const isChat = call.endpoint === 'chat.completions';
    if (!isChat && Array.isArray(call.body.tools) && call.body.tools.length > 0)
      throw new InvalidRequestError("'tools' belong to chat completions, not legacy completions.", 'tools');
    const tools: ToolRequest = isChat
      ? readToolRequest(call.body)
      : { functions: undefined, forced: undefined };
    // A forced call is held to its grammar; a stop sequence would only cut its JSON short.
    const sampling: SamplingRequest = tools.forced
      ? { ...requested, stops: [], format: { kind: 'tool_call', schema: tools.forced.schema } }
      : requested;
    const prompt = isChat
      ? model.chatPrompt(chatHistoryOf(call.body.messages), tools.functions, 'messages')
      : { tokens: model.rawPrompt(promptOf(call.body.prompt)), tokenStops: [], stops: [] };
    const planned = await model.plan(sampling, prompt, isChat ? 'messages' : 'prompt');
    const auto = tools.auto ? await autoToolCalls(model, tools.auto) : undefined;
    const plan = auto ? { ...planned, steer: auto.steer } : planned;
    const options = answerOptions(call);
    const shape = !isChat
      ? completionAnswer({ id: `cmpl-${compactId()}`, created: options.created, model: options.model })
      : tools.forced
        ? toolCallAnswer({
            id: `chatcmpl-${compactId()}`,
            ...options,
            knownName: tools.forced.tools.length === 1 ? tools.forced.tools[0]?.name : undefined,
          })
        : auto
          ? autoToolAnswer({
              id: `chatcmpl-${compactId()}`,
              ...options,
              syntax: auto.syntax,
              names: auto.names,
              parallel: auto.parallel,
            })
          : chatAnswer({ id: `chatcmpl-${compactId()}`, ...options });
    const lease = await this.acquire(model, call);
    const progress: GenerationProgress = { promptTokens: 0, completionTokens: 0 };
    if (!call.stream) {
      try {
        const { text, result } = await this.runToEnd(model, lease.slot, plan, call, progress);
        return json(shape.json(text, result.finishReason, usageOf(plan, result)));
      } finally {
        lease.release();
      }
    }
    return {
      status: 200,
      contentType: 'text/event-stream; charset=utf-8',
      headers: {},
      body: this.stream(model, lease, plan, shape, call, progress),
      partialUsage: () => usageSoFar(progress),
    };
  }

  private async acquire(model: LoadedModel, call: JsonCall): Promise<SlotLease<LlamaContextSequence>> {
    let lease: SlotLease<LlamaContextSequence>;
    try {
      lease = await model.acquire(call.signal);
    } catch (error) {
      if (!(error instanceof QueueFullError)) throw error;
      model.waits.reject();
      this.logger.warn(
        { request_id: call.requestId, backend: this.name, model: model.id, waiting: model.queue.waiting },
        'llama-cpp queue full: request refused',
      );
      throw new BackendBusyError(
        `The model '${call.model}' is busy: every slot is generating and its queue is full. Retry shortly.`,
      );
    }
    model.waits.observe(lease.waitedMs);
    const fields = {
      request_id: call.requestId,
      backend: this.name,
      model: model.id,
      queue_wait_ms: Math.round(lease.waitedMs * 100) / 100,
    };
    if (lease.waitedMs > 0) this.logger.info(fields, 'llama-cpp request waited for a slot');
    else this.logger.debug(fields, 'llama-cpp request took a free slot');
    return lease;
  }

  private async runToEnd(
    model: LoadedModel,
    sequence: LlamaContextSequence,
    plan: GenerationPlan,
    call: JsonCall,
    progress: GenerationProgress,
  ): Promise<{ text: string; result: GenerationResult }> {
    const generation = this.generate(model, sequence, plan, call, progress);
    for (;;) {
      const next = await generation.next();
      if (next.done) return { text: next.value.text, result: next.value };
    }
  }

  /**
   * One generation on a slot, logged: how it ended, or that its client left in the middle. Left
   * once the model had the prompt, what it used until then goes on the error; a stream whose
   * reader stops it (return(), no error) tells the same through its response's `partialUsage`.
   */
  private async *generate(
    model: LoadedModel,
    sequence: LlamaContextSequence,
    plan: GenerationPlan,
    call: JsonCall,
    progress: GenerationProgress,
  ): AsyncGenerator<string, GenerationResult> {
    const started = performance.now();
    let result: GenerationResult | undefined;
    try {
      result = yield* generateTokens(
        model.model,
        sequence,
        plan,
        call.signal,
        (grammar) => model.grammarState(grammar),
        progress,
      );
      return result;
    } catch (error) {
      const used = error instanceof ClientAbortedError ? usageSoFar(progress) : undefined;
      throw used ? new ClientLeftMidAnswerError(used) : error;
    } finally {
      const fields = {
        request_id: call.requestId,
        backend: this.name,
        model: model.id,
        prompt_tokens: plan.promptTokens.length,
        generation_ms: Math.round(performance.now() - started),
      };
      if (result)
        this.logger.debug(
          { ...fields, completion_tokens: result.completionTokens, finish_reason: result.finishReason },
          'llama-cpp generation ended',
        );
      else if (call.signal.aborted)
        this.logger.info(
          { ...fields, completion_tokens: progress.completionTokens },
          'llama-cpp generation stopped: the client left',
        );
    }
  }

  private stream(
    model: LoadedModel,
    lease: SlotLease<LlamaContextSequence>,
    plan: GenerationPlan,
    shape: AnswerShape,
    call: JsonCall,
    progress: GenerationProgress,
  ): AsyncIterable<Buffer> {
    // A stream nobody starts reading (the request failed on the way) must not keep its slot.
    // Once it runs, the generation itself stops at the abort and gives the slot back.
    let started = false;
    const abandoned = () => {
      if (!started) lease.release();
    };
    call.signal.addEventListener('abort', abandoned, { once: true });
    const events = this.events(model, lease, plan, shape, call, progress);
    return (async function* () {
      started = true;
      try {
        if (call.signal.aborted) throw new ClientAbortedError();
        yield* events;
      } finally {
        call.signal.removeEventListener('abort', abandoned);
        lease.release();
      }
    })();
  }

  private async *events(
    model: LoadedModel,
    lease: SlotLease<LlamaContextSequence>,
    plan: GenerationPlan,
    shape: AnswerShape,
    call: JsonCall,
    progress: GenerationProgress,
  ): AsyncGenerator<Buffer> {
    const opening = shape.opening();
    if (opening) yield Buffer.from(encodeEvent(opening));
    const generation = this.generate(model, lease.slot, plan, call, progress);
    let result: GenerationResult;
    try {
      for (;;) {
        const next = await generation.next();
        if (next.done) {
          result = next.value;
          break;
        }
        const chunks = shape.delta(next.value);
        if (chunks.length > 0) yield Buffer.from(chunks.map((chunk) => encodeEvent(chunk)).join(''));
      }
    } finally {
      // Left early (the client went): ends the model's evaluation before the slot is given back.
      await generation.return(undefined as never);
    }
    // Generation is over: the next request may have the slot while the tail is written.
    lease.release();
    const tail = [encodeEvent(shape.finish(result.finishReason))];
    if (answerOptions(call).includeUsage) tail.push(encodeEvent(shape.usage(usageOf(plan, result))));
    tail.push(encodeDone());
    yield Buffer.from(tail.join(''));
  }

  private async embeddings(call: JsonCall, model: LoadedModel): Promise<BackendResponse> {
    const request = readEmbeddingRequest(call.body, model.dimensions);
    const inputs: Token[][] = [];
    for (const input of request.inputs) {
      inputs.push(model.embeddingTokens(input));
      // Each input is bounded by the context, but a request may hold thousands: other requests
      // get their turn between them rather than after the whole body.
      await setImmediate();
    }
    const lease = await this.acquire(model, call);
    try {
      const vectors: number[][] = [];
      for (const tokens of inputs) {
        if (call.signal.aborted) throw new ClientAbortedError();
        vectors.push(unitVector(await model.embed(tokens), request.dimensions));
      }
      const promptTokens = inputs.reduce((sum, tokens) => sum + tokens.length, 0);
      return json(embeddingList(vectors, { model: call.model, base64: request.base64, promptTokens }));
    } finally {
      lease.release();
    }
  }

  async listModels(): Promise<string[]> {
    return [...this.entries.keys()];
  }

  async checkHealth(): Promise<void> {
    const entries = [...this.entries.values()];
    const loading = entries.filter((entry) => entry.state === 'loading').map((entry) => entry.file.id);
    if (loading.length > 0)
      throw new ServiceUnavailableError(`Backend '${this.name}' is loading ${loading.join(', ')}.`);
    const failed = entries.filter((entry) => entry.state === 'failed').map((entry) => entry.file.id);
    if (failed.length > 0)
      throw new ServiceUnavailableError(
        `Backend '${this.name}' could not load ${failed.join(', ')}; the gateway's log says why.`,
      );
  }

  unavailableForMs(): number | undefined {
    const states = [...this.entries.values()].map((entry) => entry.state);
    if (states.includes('loading')) return LOADING_RETRY_MS;
    return states.includes('ready') ? undefined : FAILED_RETRY_MS;
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.loaded;
    const models: LoadedModel[] = [];
    for (const entry of this.entries.values()) if (entry.state === 'ready') models.push(entry.model);
    for (const model of models)
      model.queue.rejectAll(new ServiceUnavailableError('The gateway is shutting down.'));
    await Promise.allSettled(models.map((model) => model.dispose()));
  }
}

function compactId(): string {
  return randomUUID().replaceAll('-', '');
}

function json(body: Record<string, unknown>): BackendResponse {
  return {
    status: 200,
    contentType: 'application/json',
    headers: {},
    body: [Buffer.from(JSON.stringify(body))],
  };
}

function usageOf(plan: GenerationPlan, result: GenerationResult) {
  return tokenUsage(plan.promptTokens.length, result.completionTokens);
}

/** What a generation used until now; nothing to say before the model had the prompt. */
function usageSoFar(progress: GenerationProgress) {
  return progress.promptTokens > 0 ? tokenUsage(progress.promptTokens, progress.completionTokens) : undefined;
}

function answerOptions(call: JsonCall): { created: number; model: string; includeUsage: boolean } {
  const options = call.body.stream_options;
  return {
    created: Math.floor(Date.now() / 1_000),
    model: call.model,
    includeUsage: call.stream && isRecord(options) && options.include_usage === true,
  };
}

/** A legacy prompt: text or token ids; several prompts would be several choices, like `n`. */
function promptOf(prompt: unknown): string | number[] {
  if (typeof prompt === 'string') return prompt;
  if (isNumberList(prompt)) return checkedTokenIds(prompt, 'prompt');
  if (Array.isArray(prompt) && prompt.length === 1) return promptOf(prompt[0]);
  if (Array.isArray(prompt) && prompt.every((item) => typeof item === 'string' || Array.isArray(item)))
    throw new InvalidRequestError(
      "'prompt': in-process models take one prompt per request (send several requests instead).",
      'prompt',
    );
  throw new InvalidRequestError("'prompt' must be a string or a list of token ids.", 'prompt');
}
