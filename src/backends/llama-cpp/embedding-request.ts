import { InvalidRequestError } from '../../errors.js';
import { encodeFloat32Base64 } from '../../openai/float32-base64.js';
import { checkedTokenIds, isNumberList } from './token-ids.js';

export interface EmbeddingRequest {
  /** Each input: text, or token ids. */
  inputs: Array<string | number[]>;
  dimensions: number | undefined;
  base64: boolean;
}

function isTokenList(value: unknown): value is number[] {
  return isNumberList(value) && value.length > 0;
}

/** `input` as OpenAI takes it: a string, strings, token ids, or lists of token ids. */
export function readEmbeddingRequest(
  body: Record<string, unknown>,
  modelDimensions: number,
): EmbeddingRequest {
  const input = body.input;
  let inputs: Array<string | number[]>;
  if (typeof input === 'string') inputs = [input];
  else if (isTokenList(input)) inputs = [checkedTokenIds(input, 'input')];
  else if (
    Array.isArray(input) &&
    input.length > 0 &&
    input.every((item) => typeof item === 'string' || isTokenList(item))
  )
    inputs = input.map((item: string | number[]) =>
      typeof item === 'string' ? item : checkedTokenIds(item, 'input'),
    );
  else
    throw new InvalidRequestError(
      "'input' must be a string, a list of strings, a list of token ids, or a list of such lists.",
      'input',
    );
  if (inputs.some((item) => item === ''))
    throw new InvalidRequestError("'input' cannot contain an empty string.", 'input');
  const dimensions = body.dimensions;
  if (dimensions !== undefined && dimensions !== null) {
    if (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1)
      throw new InvalidRequestError("'dimensions' must be a whole number of at least 1.", 'dimensions');
    if (dimensions > modelDimensions)
      throw new InvalidRequestError(
        `'dimensions' can be at most ${modelDimensions} for this model (its embedding length).`,
        'dimensions',
      );
  }
  const format = body.encoding_format;
  if (format !== undefined && format !== null && format !== 'float' && format !== 'base64')
    throw new InvalidRequestError("'encoding_format' must be 'float' or 'base64'.", 'encoding_format');
  return {
    inputs,
    dimensions: typeof dimensions === 'number' ? dimensions : undefined,
    base64: format === 'base64',
  };
}

/**
 * A unit vector: the model's pooled embedding cut to `dimensions` (as OpenAI's text-embedding-3
 * shortening does), then normalised. Rounded through float32 so that the float and base64
 * encodings carry the very same numbers.
 */
export function unitVector(vector: readonly number[], dimensions: number | undefined): number[] {
  const cut = dimensions === undefined ? vector : vector.slice(0, dimensions);
  let norm = 0;
  for (const value of cut) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  return Array.from(Float32Array.from(cut, (value) => value / norm));
}

export function embeddingList(
  vectors: number[][],
  options: { model: string; base64: boolean; promptTokens: number },
): Record<string, unknown> {
  return {
    object: 'list',
    data: vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding: options.base64 ? encodeFloat32Base64(vector) : vector,
    })),
    model: options.model,
    usage: { prompt_tokens: options.promptTokens, total_tokens: options.promptTokens },
  };
}
