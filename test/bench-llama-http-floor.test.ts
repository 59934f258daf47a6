import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnTracked } from './support/spawned-servers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MESSAGES = [
  { role: 'system' as const, content: 'You are a helpful assistant.' },
  { role: 'user' as const, content: 'Say something.' },
];

/**
 * Section 9 of `npm run bench` reads the gateway's overhead over this server as "what Tollgate adds
 * beyond any HTTP hop in front of the model": if it answered less than the gateway does (fewer
 * tokens, no usage, a cut stream), that figure would flatter the gateway.
 */
describe('bench/lib/llama-http-floor.mjs', () => {
  let child: ChildProcess | undefined;
  let client: OpenAI;
  let modelPath = '';

  beforeAll(async () => {
    modelPath = writeTinyGguf();
    const started = spawnTracked(process.execPath, ['bench/lib/llama-http-floor.mjs'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', MODEL_PATH: modelPath, THREADS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = started;
    let stderr = '';
    const origin = await new Promise<string>((resolve, reject) => {
      started.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(stderr);
        if (match?.[1]) resolve(match[1]);
      });
      started.once('exit', (code) => reject(new Error(`the HTTP floor exited with ${code}: ${stderr}`)));
    });
    client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: 'none', maxRetries: 0 });
  });

  afterAll(() => {
    child?.kill('SIGTERM');
    if (modelPath) rmSync(dirname(modelPath), { recursive: true, force: true });
  });

  /** A greedy chat request for `maxTokens` tokens. */
  const request = (maxTokens: number) => ({
    model: 'tiny',
    messages: MESSAGES,
    max_tokens: maxTokens,
    temperature: 0,
  });

  it('answers a chat completion with exactly max_tokens tokens and their usage', async () => {
    const answer = await client.chat.completions.create(request(5));
    expect(answer.object).toBe('chat.completion');
    expect(answer.choices[0]?.finish_reason).toBe('length');
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(answer.usage?.completion_tokens).toBe(5);
    expect(answer.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(answer.usage?.total_tokens).toBe((answer.usage?.prompt_tokens ?? 0) + 5);
  });

  it('streams the same answer one event per token, with a usage event at the end', async () => {
    const whole = await client.chat.completions.create(request(6));
    const stream = await client.chat.completions.create({
      ...request(6),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let contentEvents = 0;
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) {
        text += choice.delta.content;
        contentEvents += 1;
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]?.message.content);
    expect(contentEvents).toBeGreaterThan(0);
    expect(contentEvents).toBeLessThanOrEqual(6);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(6);
    expect(usage?.prompt_tokens).toBe(whole.usage?.prompt_tokens);
  });
});
