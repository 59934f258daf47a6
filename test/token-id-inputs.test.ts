import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { completionRequest } from '../src/schemas/openai/completions.js';
import { embeddingRequest } from '../src/schemas/openai/embeddings.js';
import { expectEnvelope, type RawResponse, rawRequest } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A prompt or embeddings input of token ids (or arrays of them) is checked once, by the branch
 * its shape picks: the union used to parse a 2M-id input as an array of strings first, building
 * one issue per element and blocking the event loop for seconds. The errors stay the union's.
 */

const MILLIONS = 2_000_000;
const LAST = MILLIONS - 1;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } });
});

afterAll(async () => {
  await gw?.close();
});

function post(path: string, body: unknown): Promise<RawResponse> {
  return rawRequest(`${gw.url}${path}`, {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function tokenIds(length: number, last?: unknown): unknown[] {
  const ids: unknown[] = Array.from({ length }, (_, i) => i % 50_000);
  if (last !== undefined) ids[length - 1] = last;
  return ids;
}

describe('2M token ids over HTTP', () => {
  it('embeddings accepts them', async () => {
    const response = await post('/v1/embeddings', { model: 'mock', input: tokenIds(MILLIONS) });
    expect(response.status, response.text.slice(0, 300)).toBe(200);
    expect((response.json as { data: unknown[] }).data).toHaveLength(1);
  });

  it('embeddings: a string as the last id is the union error naming input', async () => {
    const response = await post('/v1/embeddings', { model: 'mock', input: tokenIds(MILLIONS, 'x') });
    expect(response.status).toBe(400);
    const error = expectEnvelope(response.json, {
      type: 'invalid_request_error',
      code: null,
      param: 'input',
    });
    expect(error.message).toBe(
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    );
  });

  it('embeddings: an id past 2^53 as the last one names its index', async () => {
    const response = await post('/v1/embeddings', { model: 'mock', input: tokenIds(MILLIONS, 2 ** 60) });
    expect(response.status).toBe(400);
    const error = expectEnvelope(response.json, {
      type: 'invalid_request_error',
      code: null,
      param: `input[${LAST}]`,
    });
    expect(error.message).toMatch(/^Invalid 'input\[1999999\]': integer above maximum value\./);
  });

  it('completions accepts them, and names the last id when it is out of range', async () => {
    const ok = await post('/v1/completions', { model: 'mock', prompt: tokenIds(MILLIONS), max_tokens: 1 });
    expect(ok.status, ok.text.slice(0, 300)).toBe(200);
    const bad = await post('/v1/completions', {
      model: 'mock',
      prompt: tokenIds(MILLIONS, -(2 ** 60)),
      max_tokens: 1,
    });
    expect(bad.status).toBe(400);
    const error = expectEnvelope(bad.json, {
      type: 'invalid_request_error',
      code: null,
      param: `prompt[${LAST}]`,
    });
    expect(error.message).toMatch(/^Invalid 'prompt\[1999999\]': integer below minimum value\./);
  });
});

/** Element reads of an array, counted through a proxy (Array.isArray still sees an array). */
function counted(items: unknown[]): { value: unknown[]; reads: () => number } {
  let reads = 0;
  const value = new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { value, reads: () => reads };
}

describe.each([
  ['embeddings', embeddingRequest as z.ZodType, 'input'],
  ['completions', completionRequest as z.ZodType, 'prompt'],
])('%s: each element is checked once, by the branch its shape picks', (_name, schema, field) => {
  const length = 10_000;

  it.each([
    ['token ids', () => tokenIds(length)],
    ['strings', () => Array.from({ length }, (_, i) => `text ${i}`)],
    ['token arrays', () => Array.from({ length }, () => [1, 1])],
  ])('%s', (_kind, make) => {
    const input = counted(make());
    expect(schema.safeParse({ model: 'mock', [field]: input.value }).success).toBe(true);
    // One read per element, and one of the first per branch to see the shape; the plain union
    // read token ids twice over (as strings, then as ids) and token arrays three times.
    expect(input.reads()).toBeLessThanOrEqual(length + 4);
  });

  it('a bad last element: the branches its shape rules out report one issue, not one per element', () => {
    const result = schema.safeParse({ model: 'mock', [field]: tokenIds(length, 'x') });
    expect(result.success).toBe(false);
    const [issue] = result.error?.issues ?? [];
    expect(issue).toMatchObject({ code: 'invalid_union', path: [field] });
    const perBranch = (issue as z.core.$ZodIssueInvalidUnion).errors.map((issues) => issues.length);
    // string, strings, token ids (the one bad element), token arrays.
    expect(perBranch).toEqual([1, 1, 1, 1]);
  });
});

describe("the errors are the plain union's", () => {
  it.each([
    [
      'a number',
      5,
      'input',
      "Invalid type for 'input': expected a string, an array of strings, or token arrays, but got an integer instead.",
    ],
    [
      'an empty array',
      [],
      'input',
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    ],
    [
      'strings then an id',
      ['a', 1],
      'input',
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    ],
    [
      'ids then a string',
      [1, 'a'],
      'input',
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    ],
    [
      'a decimal id',
      [1, 1.5],
      'input',
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    ],
    [
      'a token array, then an id',
      [[1], 2],
      'input',
      "Invalid value for 'input': expected a string, an array of strings, or token arrays.",
    ],
    [
      'an id past 2^53 in a token array',
      [[1], [2, 2 ** 60]],
      'input[1][1]',
      /^Invalid 'input\[1\]\[1\]': integer above maximum value\./,
    ],
  ])('embeddings: %s', async (_name, input, param, message) => {
    const response = await post('/v1/embeddings', { model: 'mock', input });
    expect(response.status).toBe(400);
    const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param });
    if (typeof message === 'string') expect(error.message).toBe(message);
    else expect(error.message).toMatch(message);
  });

  it('completions still takes an empty prompt array', async () => {
    const response = await post('/v1/completions', { model: 'mock', prompt: [], max_tokens: 1 });
    expect(response.status, response.text).toBe(200);
  });
});
