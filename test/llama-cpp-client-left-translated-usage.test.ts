import { once } from 'node:events';
import Anthropic from '@anthropic-ai/sdk';
import type { LlamaContextSequence } from 'node-llama-cpp';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { pollUntil } from './support/poll.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';
import { newRequestId, providerRecord, recordOf, withRequestId } from './support/usage-records.js';

/**
 * The translated endpoints on the in-process model: a client that leaves a `/v1/messages` or a
 * `/v1/responses` stream in the middle is charged what the model used until it stopped, as the
 * model counted it, like a client leaving `/v1/chat/completions` (llama-cpp-client-left-usage
 * .test.ts): the translations pass the backend's `partialUsage` on with the stream they build.
 *
 * No timing: the model's one slot is held after 3 tokens until the gateway has seen the client
 * leave (the call's own abort signal), so the model generates exactly one token more.
 */

const CONTENT = 'the quick brown fox jumps over the lazy dog';
const MAX_TOKENS = 200;

let gw: TinyModelGateway;
let admin: AdminHttp;

beforeAll(async () => {
  gw = await startTinyModelGateway({
    backend: { model: writeTinyGguf(), contextSize: 1024, slots: 1 },
    extra: { auth: {}, admin: { key: TEST_ADMIN_KEY } },
  });
  await gw.backend.loaded;
  admin = new AdminHttp(gw.url);
});

afterAll(async () => {
  await gw?.close();
});

afterEach(() => {
  vi.restoreAllMocks();
});

interface Standing {
  spent_tokens: number;
  reserved_tokens: number;
}

/** A key with a day budget of tokens, and its standing: what the settle charged. */
async function budgetedKey(): Promise<{ key: string; standing: () => Promise<Standing | undefined> }> {
  const key = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
  const standing = async () => {
    const response = await fetch(`${gw.baseURL}/tollgate/key`, {
      headers: { authorization: `Bearer ${key}` },
    });
    return ((await response.json()) as { standing: { budgets: Standing[] } }).standing.budgets[0];
  };
  return { key, standing };
}

type Evaluation = ReturnType<LlamaContextSequence['evaluate']>;

/** The model's tokens as they come, held before the `tokens`+1st until `hold()` resolves. */
async function* heldTokens(inner: Evaluation, tokens: number, hold: () => Promise<void>): Evaluation {
  try {
    for (let generated = 0; ; generated++) {
      if (generated === tokens) await hold();
      const next = await inner.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await inner.return(undefined);
  }
}

/**
 * Holds the model's one slot after `tokens` generated tokens until the call answered is aborted.
 * `held` resolves once the hold began.
 */
async function holdAfter(tokens: number): Promise<{ held: Promise<void> }> {
  const backend = gw.backend;
  const send = vi.spyOn(backend, 'send');
  const lease = await backend.model('tiny').acquire(new AbortController().signal);
  const slot: LlamaContextSequence = lease.slot;
  lease.release();
  const evaluate = slot.evaluate.bind(slot);
  let began = () => {};
  const held = new Promise<void>((resolve) => {
    began = resolve;
  });
  const hold = async () => {
    const signal = send.mock.calls.at(-1)?.[0].signal;
    if (!signal) throw new Error('no call reached the backend');
    began();
    if (!signal.aborted) await once(signal, 'abort');
  };
  vi.spyOn(slot, 'evaluate').mockImplementation((prompt, options) =>
    heldTokens(evaluate(prompt, options), tokens, hold),
  );
  return { held };
}

/** The backend's own line for the generation its client left: the prompt and tokens it used. */
async function stoppedGeneration(
  requestId: string,
): Promise<{ prompt_tokens: number; completion_tokens: number }> {
  const find = async () =>
    gw
      .backendLogs()
      .find(
        (line) =>
          line.request_id === requestId && line.msg === 'llama-cpp generation stopped: the client left',
      );
  return (await pollUntil(find, (line) => line !== undefined)) as unknown as {
    prompt_tokens: number;
    completion_tokens: number;
  };
}

/** Recorded and settled as the model counted it: not estimated, the budget charged exactly that. */
async function expectExact(
  id: string,
  standing: () => Promise<Standing | undefined>,
  stream = true,
): Promise<void> {
  const used = await stoppedGeneration(id);
  // The 3 relayed, and the one sampled as the client left.
  expect(used.completion_tokens).toBe(4);
  expect(used.prompt_tokens).toBeGreaterThan(0);
  const prompt = used.prompt_tokens;
  expect(await recordOf(admin, id)).toMatchObject({
    ...providerRecord({ prompt, completion: 4 }),
    stream,
  });
  expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
    spent_tokens: prompt + 4,
    reserved_tokens: 0,
  });
}

describe('a client that leaves a translated stream of the in-process model mid-answer', () => {
  it('/v1/messages (Anthropic SDK): charged the prompt evaluated and the tokens generated, exact', async () => {
    const { key, standing } = await budgetedKey();
    await holdAfter(3);
    const id = newRequestId();
    const client = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 });
    const stream = await client.messages.create(
      { model: 'tiny', max_tokens: MAX_TOKENS, stream: true, messages: [{ role: 'user', content: CONTENT }] },
      withRequestId(id),
    );
    let received = 0;
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta' && event.delta.text)
        received += 1;
      // Leaves once the 3 tokens before the hold have arrived: the SDK aborts its request.
      if (received === 3) break;
    }
    await expectExact(id, standing);
  });

  it('/v1/responses (OpenAI SDK): the same', async () => {
    const { key, standing } = await budgetedKey();
    await holdAfter(3);
    const id = newRequestId();
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const stream = await client.responses.create(
      { model: 'tiny', input: CONTENT, max_output_tokens: MAX_TOKENS, temperature: 0, stream: true },
      withRequestId(id),
    );
    let received = 0;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta' && event.delta) received += 1;
      if (received === 3) break;
    }
    await expectExact(id, standing);
  });

  // Not streamed, the backend's error says what the model used (ClientLeftMidAnswerError) and
  // reaches the gateway through both translations as it is.
  it('/v1/messages and /v1/responses not streamed: the same, though no answer went out', async () => {
    const { key, standing } = await budgetedKey();
    const messages = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 });
    const responses = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const asks = [
      (signal: AbortSignal, id: string) =>
        messages.messages.create(
          { model: 'tiny', max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: CONTENT }] },
          { ...withRequestId(id), signal },
        ),
      (signal: AbortSignal, id: string) =>
        responses.responses.create(
          { model: 'tiny', input: CONTENT, max_output_tokens: MAX_TOKENS },
          { ...withRequestId(id), signal },
        ),
    ];
    let spent = 0;
    for (const ask of asks) {
      const { held } = await holdAfter(3);
      const id = newRequestId();
      const leaving = new AbortController();
      const answer = ask(leaving.signal, id).catch((error: unknown) => error);
      await held;
      leaving.abort();
      expect(await answer).toBeInstanceOf(Error);
      const used = await stoppedGeneration(id);
      expect(used.completion_tokens).toBe(4);
      expect(await recordOf(admin, id)).toMatchObject({
        ...providerRecord({ prompt: used.prompt_tokens, completion: 4 }),
        stream: false,
      });
      spent += used.prompt_tokens + 4;
      expect(await pollUntil(standing, (budget) => budget?.spent_tokens === spent)).toMatchObject({
        reserved_tokens: 0,
      });
      vi.restoreAllMocks();
    }
  });
});
