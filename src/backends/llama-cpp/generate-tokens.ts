import type {
  LlamaContextSequence,
  LlamaGrammar,
  LlamaGrammarEvaluationState,
  LlamaModel,
  Token,
  TokenBias,
} from 'node-llama-cpp';
import { ClientAbortedError } from '../transport-failure.js';
import { StopMatcher } from './stop-matcher.js';

export interface Sampling {
  /** 0: always the most likely token. */
  temperature: number;
  topP: number | undefined;
  /** The request's, or a random one: never left to node-llama-cpp (it takes the current second). */
  seed: number;
  tokenBias: TokenBias | undefined;
  grammar: LlamaGrammar | undefined;
}

export interface GenerationPlan {
  promptTokens: Token[];
  maxTokens: number;
  sampling: Sampling;
  /** Text that ends the answer (the request's `stop`), not included in it. */
  stops: string[];
  /** Token sequences that end the answer (the chat template's end-of-turn markers). */
  tokenStops: Token[][];
  /**
   * The grammar asks for one JSON value: the answer ends as soon as it is complete, rather than
   * on the model's end-of-text token (a weak model may pad with whitespace the grammar allows).
   */
  endsWithJson: boolean;
  /** Watches the text as it is generated (tool calls under `tool_choice: auto`). */
  steer?: GenerationSteer;
}

/**
 * Sees every piece of generated text before stop sequences apply; may hold the next tokens to
 * a grammar, and end the answer.
 */
export interface GenerationSteer {
  /** Write special (control) tokens out as their text, for a call syntax made of them. */
  readonly specialTokens: boolean;
  /** Resolves true when the answer is over. */
  push(text: string): Promise<boolean>;
  /** The grammar the next token is held to, over the plan's own; undefined: the plan's. */
  grammar(): LlamaGrammarEvaluationState | undefined;
}

export interface GenerationResult {
  text: string;
  /** Tokens the model generated, the one that ended the answer included. */
  completionTokens: number;
  finishReason: 'stop' | 'length';
}

/**
 * What one generation has used so far, kept up to date as it goes: all there is to charge for an
 * answer whose client left partway.
 */
export interface GenerationProgress {
  /** The prompt's tokens, once they were handed to the model to evaluate; 0 before. */
  promptTokens: number;
  /** Tokens the model generated, counted as they come (as GenerationResult counts them). */
  completionTokens: number;
}

/** A token whose text is cut short (part of a UTF-8 character) waits for at most this many more. */
const MAX_PARTIAL_TOKENS = 4;

function isCompleteJson(text: string): boolean {
  const trimmed = text.trimEnd();
  if (!trimmed.endsWith('}') && !trimmed.endsWith(']')) return false;
  try {
    JSON.parse(trimmed);
    return true;
  } catch {
    return false;
  }
}

function endsWith(tokens: readonly Token[], tail: readonly Token[]): boolean {
  if (tail.length === 0 || tail.length > tokens.length) return false;
  const offset = tokens.length - tail.length;
  return tail.every((token, i) => tokens[offset + i] === token);
}

/**
 * Generates on one context sequence (a slot): evaluates the prompt, then samples token by token,
 * yielding text as soon as it is whole and cannot be part of a stop sequence. Tokens are counted
 * as generated, never re-tokenised from the text, into `progress` too. Stops when the client
 * leaves (`signal`).
 */
export async function* generateTokens(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  plan: GenerationPlan,
  signal: AbortSignal,
  createGrammarState: (grammar: LlamaGrammar) => LlamaGrammarEvaluationState,
  progress: GenerationProgress = { promptTokens: 0, completionTokens: 0 },
): AsyncGenerator<string, GenerationResult> {
  // A slot starts clean, so an answer never depends on what the slot served before.
  await sequence.clearHistory();
  if (signal.aborted) throw new ClientAbortedError();
  const { sampling, steer } = plan;
  const grammar = sampling.grammar;
  const grammarState = grammar ? createGrammarState(grammar) : undefined;
  const stops = [...plan.stops];
  for (const trigger of grammar?.stopGenerationTriggers ?? [])
    if (typeof trigger === 'string') stops.push(trigger);
  const matcher = new StopMatcher(stops);
  const generated: Token[] = [];
  let pending: Token[] = [];
  let text = '';
  let finishReason: GenerationResult['finishReason'] = 'length';
  /** The model ended its answer (an end-of-generation token): what it wrote before that is all shown. */
  let endedByModel = false;
  const iterator = sequence.evaluate(plan.promptTokens, {
    temperature: sampling.temperature,
    ...(sampling.topP !== undefined ? { topP: sampling.topP } : {}),
    seed: sampling.seed,
    // Otherwise node-llama-cpp ends the iteration at an end-of-generation token without handing
    // it over: the answer would end as if cut at max_tokens ('length'), that token uncounted.
    yieldEogToken: true,
    ...(sampling.tokenBias ? { tokenBias: sampling.tokenBias } : {}),
    ...(steer
      ? { grammarEvaluationState: () => steer.grammar() ?? grammarState }
      : grammarState
        ? { grammarEvaluationState: grammarState }
        : {}),
  });
  // The first next() below evaluates the prompt.
  progress.promptTokens = plan.promptTokens.length;
  const release = (piece: string): string => {
    const shown = matcher.push(piece);
    text += shown;
    return shown;
  };
  try {
    while (generated.length < plan.maxTokens) {
      const next = await iterator.next();
      // A token sampled as the client left was generated all the same: it counts.
      if (!next.done) progress.completionTokens += 1;
      if (signal.aborted) throw new ClientAbortedError();
      if (next.done) break;
      const token = next.value;
      generated.push(token);
      if (model.isEogToken(token) || plan.tokenStops.some((stop) => endsWith(generated, stop))) {
        finishReason = 'stop';
        endedByModel = model.isEogToken(token);
        break;
      }
      pending.push(token);
      const before = generated.slice(Math.max(0, generated.length - pending.length - 8), -pending.length);
      const piece = model.detokenize(pending, steer?.specialTokens ?? false, before);
      if (piece.endsWith('\uFFFD') && pending.length < MAX_PARTIAL_TOKENS) continue;
      pending = [];
      const shown = release(piece);
      if (shown !== '') yield shown;
      if (steer && !matcher.stopped && (await steer.push(piece))) {
        finishReason = 'stop';
        break;
      }
      if (matcher.stopped || (plan.endsWithJson && isCompleteJson(text))) {
        finishReason = 'stop';
        break;
      }
    }
  } finally {
    await iterator.return(undefined);
  }
  // Tokens still waiting for the rest of a character are text too when the answer ended by length
  // or by the model's own end (a character the model never finished shows as U+FFFD).
  if (!matcher.stopped && (finishReason !== 'stop' || endedByModel) && pending.length > 0) {
    const shown = release(model.detokenize(pending, steer?.specialTokens ?? false));
    if (shown !== '') yield shown;
  }
  const rest = matcher.flush();
  text += rest;
  if (rest !== '') yield rest;
  if (matcher.stopped) finishReason = 'stop';
  return { text, completionTokens: generated.length, finishReason };
}
