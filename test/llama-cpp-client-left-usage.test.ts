import { once } from 'node:events';
import type { LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import OpenAI, { APIUserAbortError } from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadNodeLlamaCpp } from '../src/backends/llama-cpp/load-node-llama-cpp.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { pollUntil } from './support/poll.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';
import { newRequestId, providerRecord, recordOf, withRequestId } from './support/usage-records.js';

/**
 * A client that leaves the in-process model in the middle of an answer is charged what the model
 * used until it stopped, as the model counted it (the prompt it evaluated, the tokens it
 * generated), recorded and settled as the backend's usage, not the gateway's estimate.
 *
 * No timing: the model's one slot is held after a few tokens until the gateway has seen the
 * client leave (the call's own abort signal), so every answer is cut mid-generation whatever the
 * machine's speed, and the model generates exactly one token more (sampled as the client left).
 */

const MESSAGES = [{ role: 'user' as const, content: 'the quick brown fox jumps over the lazy dog' }];
const PROMPT = 'hello world the tiny model';
/** Far more than a held answer gets to: each answer below is cut long before its end. */
const MAX_TOKENS = 200;

let gw: TinyModelGateway;
let admin: AdminHttp;
/** The same GGUF loaded apart from the gateway: its tokenizer is the reference for the prompt. */
let reference: LlamaModel;

beforeAll(async () => {
  const path = writeTinyGguf();
  gw = await startTinyModelGateway({
    backend: { model: path, contextSize: 1024, slots: 1 },
    extra: { auth: {}, admin: { key: TEST_ADMIN_KEY } },
  });
  await gw.backend.loaded;
  admin = new AdminHttp(gw.url);
  const { llama } = await loadNodeLlamaCpp(gw.app.log);
  reference = await llama.loadModel({ modelPath: path });
});

afterAll(async () => {
  await reference?.dispose();
  await gw?.close();
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** What the tiny model's ChatML template makes of MESSAGES, counted by its tokenizer. */
function chatPromptTokens(): number {
  const text = `<|im_start|>user\n${MESSAGES[0]?.content}<|im_end|>\n<|im_start|>assistant\n`;
  return [reference.tokens.bos, ...reference.tokenize(text, true)].length;
}

/** A raw prompt as the model reads it: BOS, then its tokens. */
function rawPromptTokens(): number {
  return [reference.tokens.bos, ...reference.tokenize(PROMPT, false)].length;
}

/** A client whose key has a day budget of tokens: what the settle charged shows in its standing. */
async function budgetedClient(): Promise<{ client: OpenAI; standing: () => Promise<Standing | undefined> }> {
  const key = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
  const standing = async () => {
    const response = await fetch(`${gw.baseURL}/tollgate/key`, {
      headers: { authorization: `Bearer ${key}` },
    });
    return ((await response.json()) as { standing: { budgets: Standing[] } }).standing.budgets[0];
  };
  return { client: new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 }), standing };
}

/** What a context sequence's `evaluate` returns: the tokens the model generates, one per next(). */
type Evaluation = ReturnType<LlamaContextSequence['evaluate']>;

interface Standing {
  spent_tokens: number;
  reserved_tokens: number;
}

/** The model's tokens as they come, the evaluation held before the `tokens`+1st until `hold()` resolves. */
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
 * Holds the model's one slot after `tokens` generated tokens until the call being answered is
 * aborted (its client left). `held` resolves once the hold began.
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

/** The backend's own line for the generation its client left: how many tokens it generated. */
async function stoppedGeneration(requestId: string): Promise<Record<string, unknown> | undefined> {
  const find = async () =>
    gw
      .backendLogs()
      .find(
        (line) =>
          line.request_id === requestId && line.msg === 'llama-cpp generation stopped: the client left',
      );
  return pollUntil(find, (line) => line !== undefined);
}

describe('a client that leaves the in-process model mid-answer', () => {
  it('a chat stream: recorded and settled with the prompt and the tokens the model generated, exact', async () => {
    const { client, standing } = await budgetedClient();
    await holdAfter(3);
    const id = newRequestId();
    const stream = await client.chat.completions.create(
      { model: 'tiny', messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0, stream: true },
      withRequestId(id),
    );
    let received = 0;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) received += 1;
      // Leaves once the 3 tokens before the hold have arrived: the SDK aborts its request.
      if (received === 3) break;
    }
    const prompt = chatPromptTokens();
    // The 3 relayed, and the one sampled as the client left.
    const completion = 4;
    expect(await stoppedGeneration(id)).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: completion,
    });
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt, completion }),
      status: 200,
      stream: true,
    });
    expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
      spent_tokens: prompt + completion,
      reserved_tokens: 0,
    });
  });

  it('a chat answer not streamed: the same, though no answer went out', async () => {
    const { client, standing } = await budgetedClient();
    const { held } = await holdAfter(3);
    const id = newRequestId();
    const leaving = new AbortController();
    const answer = client.chat.completions
      .create(
        { model: 'tiny', messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0 },
        { ...withRequestId(id), signal: leaving.signal },
      )
      .catch((error: unknown) => error);
    await held;
    leaving.abort();
    expect(await answer).toBeInstanceOf(APIUserAbortError);
    const prompt = chatPromptTokens();
    const completion = 4;
    expect(await stoppedGeneration(id)).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: completion,
    });
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt, completion }),
      stream: false,
    });
    expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
      spent_tokens: prompt + completion,
      reserved_tokens: 0,
    });
  });

  it('a completions stream left before its first token: the prompt evaluated and the one token', async () => {
    const { client, standing } = await budgetedClient();
    // Held before the prompt is evaluated: the gateway still reads ahead for the first event.
    const { held } = await holdAfter(0);
    const id = newRequestId();
    const leaving = new AbortController();
    const stream = client.completions
      .create(
        { model: 'tiny', prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stream: true },
        { ...withRequestId(id), signal: leaving.signal },
      )
      .catch((error: unknown) => error);
    await held;
    leaving.abort();
    expect(await stream).toBeInstanceOf(APIUserAbortError);
    const prompt = rawPromptTokens();
    const completion = 1;
    expect(await stoppedGeneration(id)).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: completion,
    });
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt, completion }),
      stream: true,
    });
    expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
      spent_tokens: prompt + completion,
      reserved_tokens: 0,
    });
  });
});
