import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheKey, keyableBody, MOST_KEYS_PER_OBJECT, MOST_NESTING } from '../src/cache/cache-key.js';
import { sourceJson } from '../src/json-source.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * ③ cache: keying a body sorts every object's keys, which costs more per key the larger the
 * object. A body with an object over MOST_KEYS_PER_OBJECT keys (a 92,000-key logit_bias fits in
 * 1 MB) is not keyed: BYPASS, as for a body over cache.maxRequestBytes. Keys of everything else
 * are unchanged, so entries stored before still hit.
 */

/** An object of `count` token-id keys, as logit_bias is written. */
function bias(count: number): Record<string, number> {
  const map: Record<string, number> = {};
  for (let i = 0; i < count; i++) map[String(i)] = (i % 3) - 1;
  return map;
}

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe('③ cache key', () => {
  it('is the same as before the budget for a fixed body (stored entries still hit)', () => {
    const body = {
      model: 'gpt-4o-mini',
      stream: true,
      user: 'u-1',
      temperature: 0,
      seed: 7,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { content: 'Héllo "there"\n', role: 'user', name: 'ann' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'lookup',
            parameters: {
              type: 'object',
              required: ['q'],
              properties: { q: { type: 'string' }, limit: { type: 'integer', maximum: 10 } },
            },
          },
        },
      ],
      logit_bias: { '50256': -100, '10': 5, '9': 1, '01': 2 },
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'n', schema: { b: null, a: [1, { z: true, y: false }] } },
      },
      extra: { big: sourceJson.rawJSON('12345678901234567890123') },
    };
    expect(cacheKey('chat.completions', 'gpt-4o-mini', 'gpt-4o-mini', body)).toBe(
      'e3eae64d5e28721729e4e58302a3c92a49f6e99f34bf61fa8de122b2ef4ca957',
    );
    expect(
      cacheKey('embeddings', 'emb', 'text-embedding-3-small', {
        model: 'x',
        input: 'hello',
        encoding_format: 'float',
        dimensions: 256,
      }),
    ).toBe('fbf003bb779383a0f2a5830c5fdac0e7534b3b0930d3ac49c8cb9018166010cf');
  });

  it('keys bodies whose objects are within the budget, not one object over it', () => {
    expect(keyableBody({ logit_bias: bias(MOST_KEYS_PER_OBJECT) })).toBe(true);
    expect(keyableBody({ logit_bias: bias(MOST_KEYS_PER_OBJECT + 1) })).toBe(false);
    expect(
      keyableBody({
        messages: [{ role: 'user', content: [{ type: 'text', x: bias(MOST_KEYS_PER_OBJECT + 1) }] }],
      }),
    ).toBe(false);
    // Many keys spread over small objects cost little each: the budget is per object.
    const messages = Array.from({ length: 3 * MOST_KEYS_PER_OBJECT }, (_, i) => ({
      role: 'user',
      content: `m${i}`,
    }));
    expect(keyableBody({ messages })).toBe(true);
  });

  it('keys nesting up to the bound without exhausting the stack, not deeper', () => {
    const deepest = { messages: nested(MOST_NESTING) };
    expect(keyableBody(deepest)).toBe(true);
    expect(cacheKey('chat.completions', 'm', 'm', deepest)).toMatch(/^[0-9a-f]{64}$/);
    expect(keyableBody({ messages: nested(MOST_NESTING + 1) })).toBe(false);
  });
});

describe('③ cache and bodies too costly to key', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    // cache.maxRequestBytes stays at its default (1 MB): the bodies here are under it.
    gw = await startGateway({
      auth: 'none',
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
      cache: { enabled: true, scope: 'global' },
    });
  });

  afterAll(async () => {
    await gw?.close();
  });

  async function ask(
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<string | null> {
    const text = JSON.stringify({ model: 'mock', temperature: 0, ...body });
    expect(Buffer.byteLength(text)).toBeLessThan(1024 ** 2);
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: text,
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    return response.headers.get('x-tollgate-cache');
  }

  /** MISS, then HIT once the entry is stored (after the answer went out: wait for it, not for time). */
  async function expectCached(body: Record<string, unknown>): Promise<void> {
    expect(await ask(body)).toBe('MISS');
    let next = await ask(body);
    while (next !== 'HIT') {
      expect(next).toBe('MISS');
      next = await ask(body);
    }
  }

  it('a 1 MB body with a 92,000-key logit_bias is BYPASSed, even with x-tollgate-cache: on', async () => {
    const body = { messages: [{ role: 'user', content: 'hi' }], logit_bias: bias(92_000) };
    expect(await ask(body, { 'x-tollgate-cache': 'on' })).toBe('BYPASS');
    expect(await ask(body, { 'x-tollgate-cache': 'on' })).toBe('BYPASS');
  });

  it('one key over the budget is BYPASSed; at the budget it is cached', async () => {
    const messages = [{ role: 'user', content: 'budget' }];
    expect(await ask({ messages, logit_bias: bias(MOST_KEYS_PER_OBJECT + 1) })).toBe('BYPASS');
    await expectCached({ messages, logit_bias: bias(MOST_KEYS_PER_OBJECT) });
  });

  it('a 900 KB chat with a long history and many tools is cached', async () => {
    const tools = Array.from({ length: 128 }, (_, t) => ({
      type: 'function',
      function: {
        name: `tool_${t}`,
        description: `Tool ${t}. ${'x'.repeat(120)}`,
        parameters: {
          type: 'object',
          properties: Object.fromEntries(
            Array.from({ length: 12 }, (_, p) => [
              `param_${p}`,
              { type: 'string', description: `${'d'.repeat(40)}` },
            ]),
          ),
          required: ['param_0'],
        },
      },
    }));
    const messages: Array<Record<string, unknown>> = [{ role: 'system', content: 'You are helpful.' }];
    let size = JSON.stringify({ tools, messages }).length;
    for (let n = 0; size < 900_000; n++) {
      const turn = [
        { role: 'user', content: `Question ${n}: ${'lorem ipsum '.repeat(16)}` },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: `call_${n}`,
              type: 'function',
              function: { name: `tool_${n % 128}`, arguments: '{"a":1}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: `call_${n}`, content: `Result ${n}: ${'r'.repeat(150)}` },
      ];
      messages.push(...turn);
      size += JSON.stringify(turn).length - 1;
    }
    await expectCached({ messages, tools });
  });
});
