import type { LlamaModel, Token, TokenBias } from 'node-llama-cpp';
import { InvalidRequestError } from '../../errors.js';
import type { NodeLlamaCpp } from './load-node-llama-cpp.js';

/** What node-llama-cpp hands llama.cpp's logit-bias sampler: token -> logit added (-Infinity bans). */
interface BiasTable {
  _biases?: unknown;
}

/**
 * A request's `logit_bias` (OpenAI's -100..100 added to the logits; -100 bans) as node-llama-cpp's
 * TokenBias. `TokenBias.set` skips end-of-generation tokens, yet a client biases them on purpose
 * (ban `</s>` for a longer answer, favour it for a shorter one), as OpenAI lets it: those go
 * straight into the table node-llama-cpp passes to llama.cpp's sampler, which takes any token.
 * The table is internal to node-llama-cpp (3.21.1 is pinned); were it ever missing, such a
 * bias is refused in words rather than dropped.
 */
export function biasOf(
  library: NodeLlamaCpp,
  model: LlamaModel,
  logitBias: ReadonlyMap<number, number>,
): TokenBias | undefined {
  if (logitBias.size === 0) return undefined;
  const bias = new library.TokenBias(model.tokenizer);
  for (const [token, amount] of logitBias) {
    const logit = amount <= -100 ? Number.NEGATIVE_INFINITY : amount;
    if (!model.isEogToken(token as Token)) {
      bias.set(token as Token, logit === Number.NEGATIVE_INFINITY ? 'never' : { logit });
      continue;
    }
    const table = (bias as unknown as BiasTable)._biases;
    if (!(table instanceof Map))
      throw new InvalidRequestError(
        `'logit_bias': token ${token} (${JSON.stringify(model.detokenize([token as Token], true))}) ends the answer, and this build of the in-process backend cannot bias it.`,
        'logit_bias',
      );
    table.set(token, logit);
  }
  return bias;
}
