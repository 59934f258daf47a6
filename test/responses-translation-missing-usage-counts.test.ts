import type { ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { countTextTokens } from '../src/usage/token-counter.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream, type RecordedRequest, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import {
  countedRecord,
  newRequestId,
  providerRecord,
  recordsOf,
  withRequestId,
} from './support/usage-records.js';

/**
 * `/v1/responses` on a chat-only backend (translated to chat completions): chat usage without a
 * prompt count or a completion count, or with a negative one, is no usage. The translation counts
 * the answer itself, as it does for a chat answer with no usage at all: the Response carries that
 * count, the gateway records it estimated and charges it. Renamed as it came, the missing count
 * was a 0 the gateway charged as given (a free prompt, or a free answer).
 */

type Json = Record<string, unknown>;

/** The chat upstream's usage, by the model asked; `none` reports no usage at all. */
const VARIANTS: Record<string, Json | undefined> = {
  none: undefined,
  'no-prompt': { completion_tokens: 5, total_tokens: 5 },
  'null-prompt': { prompt_tokens: null, completion_tokens: 5, total_tokens: 5 },
  'no-completion': { prompt_tokens: 11, total_tokens: 11 },
  'null-completion': { prompt_tokens: 11, completion_tokens: null, total_tokens: 11 },
  'negative-prompt': { prompt_tokens: -50, completion_tokens: 5, total_tokens: -45 },
  whole: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 },
};
const MISSING = Object.keys(VARIANTS).filter((model) => model !== 'whole');
/** A stream's usage chunks: a whole one, then one without the prompt (a later, partial report). */
const WHOLE_THEN_PROMPTLESS = 'whole-then-promptless';
const ANSWER_PIECES = ['Counted', ' by', ' the', ' gateway.'];
const ANSWER_TEXT = ANSWER_PIECES.join('');

function usageChunksOf(model: string): Json[] {
  if (model === WHOLE_THEN_PROMPTLESS) return [VARIANTS.whole as Json, VARIANTS['no-prompt'] as Json];
  if (!(model in VARIANTS)) throw new Error(`no variant for ${model}`);
  const usage = VARIANTS[model];
  return usage ? [usage] : [];
}

function chat(request: RecordedRequest, res: ServerResponse): void | Promise<void> {
  const body = request.json ?? {};
  const model = String(body.model);
  const usages = usageChunksOf(model);
  const base = { id: 'chatcmpl-1', created: 1_700_000_000, model };
  if (body.stream !== true) {
    return sendJson(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: ANSWER_TEXT, refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      ...(usages.length > 0 ? { usage: usages.at(-1) } : {}),
    });
  }
  const chunk = { ...base, object: 'chat.completion.chunk' };
  return sendSse(res, [
    ...ANSWER_PIECES.map((content, i) => ({
      ...chunk,
      choices: [
        { index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null },
      ],
    })),
    { ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    ...usages.map((usage) => ({ ...chunk, choices: [], usage })),
  ]);
}

/** The Responses usage of the gateway's own count for `input` answered with ANSWER_TEXT. */
function countedUsage(model: string, input: string) {
  const prompt = estimatePromptTokens('responses', { model, input });
  const output = countTextTokens(ANSWER_TEXT);
  return {
    input_tokens: prompt,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: prompt + output,
  };
}

describe('/v1/responses translated to chat: usage without both counts is counted', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let admin: AdminHttp;
  let openai: OpenAI;

  beforeAll(async () => {
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', chat);
    const base = await upstream.start();
    const models = [...Object.keys(VARIANTS), WHOLE_THEN_PROMPTLESS];
    gw = await startGateway(
      {
        auth: {},
        admin: { key: TEST_ADMIN_KEY },
        // The injected registry replaces this backend (same name) with a chat-only one.
        backends: { local: { type: 'mock' } },
        models: Object.fromEntries(models.map((model) => [model, { backend: 'local' }])),
      },
      {},
      { registry: new BackendRegistry([chatOnlyUpstream('local', base)]) },
    );
    admin = new AdminHttp(gw.url);
    const key = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    openai = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  /** A streamed response read whole: its text and the usage of its last event. */
  async function streamed(model: string, input: string, id: string) {
    const stream = await openai.responses.create({ model, input, stream: true }, withRequestId(id));
    let text = '';
    let last: OpenAI.Responses.ResponseStreamEvent | undefined;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') text += event.delta;
      last = event;
    }
    return { text, type: last?.type, usage: last && 'response' in last ? last.response.usage : undefined };
  }

  it.each(MISSING)(
    'chat usage %s: the Response carries the count, recorded estimated, JSON and stream',
    async (model) => {
      const input = 'Who counts the tokens of this response?';
      const [whole, stream] = [newRequestId(), newRequestId()];
      const answer = await openai.responses.create({ model, input }, withRequestId(whole));
      const events = await streamed(model, input, stream);
      const usage = countedUsage(model, input);
      expect(answer.output_text).toBe(ANSWER_TEXT);
      expect(answer.usage).toEqual(usage);
      expect(events).toEqual({ text: ANSWER_TEXT, type: 'response.completed', usage });
      const counted = countedRecord(usage.input_tokens, usage.output_tokens);
      expect(counted.prompt_tokens).toBeGreaterThan(0);
      const records = await recordsOf(admin, [whole, stream]);
      expect(records[0]).toMatchObject({ ...counted, stream: false });
      expect(records[1]).toMatchObject({ ...counted, stream: true });
    },
  );

  it('whole chat usage is taken as given; a later chunk without the prompt does not replace it', async () => {
    const input = 'Whose figures are these?';
    const [whole, stream, later] = [newRequestId(), newRequestId(), newRequestId()];
    const translated = {
      input_tokens: 11,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: 5,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 16,
    };
    expect((await openai.responses.create({ model: 'whole', input }, withRequestId(whole))).usage).toEqual(
      translated,
    );
    expect((await streamed('whole', input, stream)).usage).toEqual(translated);
    expect((await streamed(WHOLE_THEN_PROMPTLESS, input, later)).usage).toEqual(translated);
    const provider = providerRecord({ prompt: 11, completion: 5 });
    const records = await recordsOf(admin, [whole, stream, later]);
    expect(records[0]).toMatchObject({ ...provider, stream: false });
    expect(records[1]).toMatchObject({ ...provider, stream: true });
    expect(records[2]).toMatchObject({ ...provider, stream: true });
  });

  it('the budget is charged the counted prompt, not 0', async () => {
    const budgeted = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: budgeted, maxRetries: 0 });
    const input = 'Charge the prompt of this response.';
    const [whole, stream] = [newRequestId(), newRequestId()];
    await client.responses.create({ model: 'no-prompt', input }, withRequestId(whole));
    for await (const _event of await client.responses.create(
      { model: 'no-prompt', input, stream: true },
      withRequestId(stream),
    ));
    const records = await recordsOf(admin, [whole, stream]);
    const usage = countedUsage('no-prompt', input);
    for (const record of records)
      expect(record).toMatchObject(countedRecord(usage.input_tokens, usage.output_tokens));
    const standing = async () => {
      const response = await fetch(`${gw.baseURL}/tollgate/key`, {
        headers: { authorization: `Bearer ${budgeted}` },
      });
      return (
        (await response.json()) as {
          standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> };
        }
      ).standing.budgets[0];
    };
    expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
      spent_tokens: 2 * usage.total_tokens,
    });
  });
});
