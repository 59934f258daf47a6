import { createHash } from 'node:crypto';
import { encodeFloat32Base64 } from '../../openai/float32-base64.js';
import { estimateTokens } from './mock-text.js';

function inputsOf(input: unknown): unknown[] {
  if (typeof input === 'string') return [input];
  if (Array.isArray(input) && input.length > 0 && input.every((item) => typeof item === 'number'))
    return [input];
  return Array.isArray(input) ? input : [input];
}

/** A unit vector derived from the input's hash: same input, same vector, on every run. */
export function embeddingVector(input: unknown, dimensions: number): number[] {
  const values: number[] = [];
  let block = 0;
  while (values.length < dimensions) {
    const digest = createHash('sha256')
      .update(`${block++}:${JSON.stringify(input)}`)
      .digest();
    for (let i = 0; i + 4 <= digest.length && values.length < dimensions; i += 4) {
      values.push(digest.readUInt32LE(i) / 0xffffffff - 0.5);
    }
  }
  const norm = Math.hypot(...values) || 1;
  // Round-trip through float32 so float and base64 encodings carry the very same numbers.
  return Array.from(Float32Array.from(values.map((value) => value / norm)));
}

export function embeddings(
  body: Record<string, unknown>,
  options: { model: string; dimensions: number },
): Record<string, unknown> {
  const inputs = inputsOf(body.input);
  const dimensions =
    typeof body.dimensions === 'number' && body.dimensions > 0 ? body.dimensions : options.dimensions;
  const base64 = body.encoding_format === 'base64';
  const promptTokens = inputs.reduce<number>(
    (sum, input) => sum + (Array.isArray(input) ? input.length : estimateTokens(String(input))),
    0,
  );
  return {
    object: 'list',
    data: inputs.map((input, index) => {
      const vector = embeddingVector(input, Math.min(dimensions, 8192));
      return { object: 'embedding', index, embedding: base64 ? encodeFloat32Base64(vector) : vector };
    }),
    model: options.model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
