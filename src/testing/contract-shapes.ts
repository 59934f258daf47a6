import { expect } from 'vitest';

/**
 * The shape checks the suite always makes, whatever validators it was given: the fields the
 * gateway and the OpenAI SDKs read. The repository's own tests add validation against the whole
 * OpenAI spec (ContractValidators).
 */
export interface ContractValidators {
  chatCompletion(body: unknown): void;
  chatCompletionChunk(chunk: unknown): void;
  completion(body: unknown): void;
  completionChunk(chunk: unknown): void;
  embeddingResponse(body: unknown): void;
  response(body: unknown): void;
  responseStreamEvent(event: unknown): void;
}

type Json = Record<string, unknown>;

const count = expect.any(Number);

export function expectUsage(usage: unknown, withCompletion = true): void {
  expect(usage, 'usage').toMatchObject(
    withCompletion
      ? { prompt_tokens: count, completion_tokens: count, total_tokens: count }
      : { prompt_tokens: count, total_tokens: count },
  );
  const tokens = usage as Json;
  for (const field of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    if (tokens[field] !== undefined) {
      expect(Number.isInteger(tokens[field]), `usage.${field} is an integer`).toBe(true);
      expect(tokens[field] as number).toBeGreaterThanOrEqual(0);
    }
  }
  if (withCompletion) {
    expect(tokens.total_tokens).toBe((tokens.prompt_tokens as number) + (tokens.completion_tokens as number));
  }
}

export function expectChatCompletionShape(body: Json): void {
  expect(body).toMatchObject({
    id: expect.any(String),
    object: 'chat.completion',
    model: expect.any(String),
  });
  const choices = body.choices as Json[];
  expect(Array.isArray(choices) && choices.length > 0, 'choices is a non-empty array').toBe(true);
  expect(choices[0]).toMatchObject({
    index: 0,
    message: { role: 'assistant', content: expect.any(String) },
    finish_reason: expect.any(String),
  });
  expectUsage(body.usage);
}

export function expectChatChunkShape(chunk: Json): void {
  expect(chunk).toMatchObject({ id: expect.any(String), object: 'chat.completion.chunk' });
  expect(Array.isArray(chunk.choices), 'choices is an array').toBe(true);
}

export function expectCompletionShape(body: Json): void {
  expect(body).toMatchObject({ id: expect.any(String), object: 'text_completion' });
  const choices = body.choices as Json[];
  expect(Array.isArray(choices) && choices.length > 0, 'choices is a non-empty array').toBe(true);
  expect(choices[0]).toMatchObject({ index: 0, text: expect.any(String) });
  expectUsage(body.usage);
}

export function expectCompletionChunkShape(chunk: Json): void {
  expect(chunk).toMatchObject({ id: expect.any(String), object: 'text_completion' });
  expect(Array.isArray(chunk.choices), 'choices is an array').toBe(true);
}

/** The vectors, decoded when base64 (little-endian float32, as OpenAI sends them). */
export function embeddingVectors(body: Json, inputs: number): number[][] {
  expect(body).toMatchObject({ object: 'list', data: expect.any(Array) });
  const data = body.data as Json[];
  expect(data).toHaveLength(inputs);
  const vectors = data.map((item, index) => {
    expect(item).toMatchObject({ object: 'embedding', index });
    const embedding = item.embedding;
    if (typeof embedding === 'string') {
      const bytes = Buffer.from(embedding, 'base64');
      expect(bytes.length % 4, 'a base64 embedding holds whole float32s').toBe(0);
      return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    }
    expect(Array.isArray(embedding), 'embedding is an array or a base64 string').toBe(true);
    for (const value of embedding as unknown[]) expect(value).toBeTypeOf('number');
    return embedding as number[];
  });
  expect(vectors[0]?.length ?? 0, 'embeddings are not empty').toBeGreaterThan(0);
  for (const vector of vectors) expect(vector).toHaveLength(vectors[0]?.length ?? 0);
  expectUsage(body.usage, false);
  return vectors;
}

export function expectResponseShape(body: Json): void {
  expect(body).toMatchObject({ id: expect.any(String), object: 'response', status: 'completed' });
  expect(Array.isArray(body.output), 'output is an array').toBe(true);
  expect(body.usage, 'usage').toMatchObject({
    input_tokens: count,
    output_tokens: count,
    total_tokens: count,
  });
}

/** The text of a Responses answer: its output messages' output_text parts. */
export function responseText(body: Json): string {
  return (body.output as Json[])
    .filter((item) => item.type === 'message')
    .flatMap((item) => item.content as Json[])
    .filter((part) => part.type === 'output_text')
    .map((part) => part.text as string)
    .join('');
}
