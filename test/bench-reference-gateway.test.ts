import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { spawnTracked } from './support/spawned-servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'sk-reference-test-key';
const ANSWER = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'up-model',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 },
};

/**
 * `node bench/reference.mjs` compares Tollgate with this program: if it stopped forwarding what it
 * should, or let anyone in, the comparison would be against a gateway that does less than it says.
 */
describe('bench/reference-gateway.mjs', () => {
  const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, response) =>
    sendJson(response, 200, ANSWER),
  );
  const children: ChildProcess[] = [];

  /** Starts it on a port of its own choosing; resolves with its origin once it says it listens. */
  async function start(steps: 'all' | 'fastify'): Promise<string> {
    const child = spawnTracked(process.execPath, ['bench/reference-gateway.mjs'], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        UPSTREAM_URL: `http://127.0.0.1:${upstream.port}`,
        REFERENCE_KEY: KEY,
        REFERENCE_STEPS: steps,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    return new Promise((resolve, reject) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(stderr);
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`the reference gateway exited with ${code}: ${stderr}`)));
    });
  }

  const chat = (origin: string, key: string, body: unknown) =>
    fetch(`${origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    await upstream.start();
  });
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    }
    await upstream.stop();
  });

  it('checks the key and the fields it reads, forwards the body and answers the upstream JSON', async () => {
    const origin = await start('all');
    const body = { model: 'bench-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 };

    const answer = await chat(origin, KEY, body);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual(ANSWER);
    const seen = upstream.requests.at(-1);
    expect(seen?.json).toEqual(body);
    expect(seen?.headers.authorization).toBe('Bearer sk-reference-upstream');

    const before = upstream.requests.length;
    const wrongKey = await chat(origin, 'sk-wrong', body);
    expect(wrongKey.status).toBe(401);
    expect(await wrongKey.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    const noMessages = await chat(origin, KEY, { model: 'bench-model' });
    expect(noMessages.status).toBe(400);
    expect(await noMessages.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    expect(upstream.requests.length).toBe(before);
  });

  it('with REFERENCE_STEPS=fastify relays the request bytes and the answer untouched', async () => {
    const origin = await start('fastify');
    const raw = '{"model":"bench-model",  "messages":[{"role":"user","content":"hello"}]}';
    const answer = await fetch(`${origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: raw,
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual(ANSWER);
    expect(upstream.requests.at(-1)?.body.toString('utf8')).toBe(raw);
  });
});
