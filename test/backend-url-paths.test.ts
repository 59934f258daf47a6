import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope } from './support/error-envelope.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Backends that build upstream URLs from what the client sent. Azure puts the deployment (for a
 * wildcard route, the client's model name after the prefix) into the path; the OpenAI-compatible
 * backend keeps the model in the body. A real upstream records each request's raw path.
 */

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;

const chatAnswer = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'm',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'ok', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
};

/** Raw request targets (path and query, as sent on the wire) the upstream received. */
function seenTargets(): string[] {
  return upstream.requests.map((request) => request.url);
}

beforeAll(async () => {
  upstream = new FakeUpstream();
  for (const path of [
    '/openai/deployments/my-deploy/chat/completions',
    '/openai/deployments/a%20b%3Fc%23d%25e/chat/completions',
    '/openai/deployments/..%2F..%2Fadmin/chat/completions',
    '/openai/deployments/...%2F/chat/completions',
    '/v1/chat/completions',
  ]) {
    upstream.on('POST', path, (_request, res) => sendJson(res, 200, chatAnswer));
  }
  const base = await upstream.start();
  gw = await startGateway({
    backends: {
      az: { type: 'azure', baseUrl: base, apiKey: 'azure-key-123456', apiVersion: '2024-10-21' },
      oa: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream-123456' },
    },
    models: { 'az/*': { backend: 'az' }, 'oa/*': { backend: 'oa' } },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-anything', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

function chat(model: string): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
}

describe('Azure: the deployment name from a wildcard route is one encoded path segment', () => {
  for (const model of ['az/..', 'az/.']) {
    it(`${model} -> 400 naming model; nothing reaches the upstream`, async () => {
      const before = upstream.requests.length;
      const response = await chat(model);
      expect(response.status).toBe(400);
      const error = expectEnvelope(await response.json(), {
        type: 'invalid_request_error',
        code: null,
        param: 'model',
      });
      expect(error.message).toContain(`'${model.slice('az/'.length)}'`);
      expect(upstream.requests.length).toBe(before);
    });
  }

  it('a name that is not valid Unicode (a lone surrogate) -> 400 naming model, not a 500', async () => {
    const before = upstream.requests.length;
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"az/\\udfff","messages":[{"role":"user","content":"hi"}]}',
    });
    expect(response.status).toBe(400);
    expectEnvelope(await response.json(), { type: 'invalid_request_error', code: null, param: 'model' });
    expect(upstream.requests.length).toBe(before);
  });

  it('az/.. on an upload (transcription) -> 400 naming model, through the SDK', async () => {
    const before = upstream.requests.length;
    const error = await client.audio.transcriptions
      .create({ model: 'az/..', file: await toFile(Buffer.alloc(64 * 1024, 1), 'a.wav') })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, param: 'model', code: null });
    expect(upstream.requests.length).toBe(before);
  });

  it('az/ (nothing after the prefix) is no model at all -> 404', async () => {
    const before = upstream.requests.length;
    const response = await chat('az/');
    expect(response.status).toBe(404);
    expectEnvelope(await response.json(), {
      type: 'invalid_request_error',
      code: 'model_not_found',
      param: 'model',
    });
    expect(upstream.requests.length).toBe(before);
  });

  const encoded: Array<[string, string]> = [
    ['az/my-deploy', '/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21'],
    ['az/a b?c#d%e', '/openai/deployments/a%20b%3Fc%23d%25e/chat/completions?api-version=2024-10-21'],
    ['az/../../admin', '/openai/deployments/..%2F..%2Fadmin/chat/completions?api-version=2024-10-21'],
    ['az/.../', '/openai/deployments/...%2F/chat/completions?api-version=2024-10-21'],
  ];
  for (const [model, target] of encoded) {
    it(`${model} reaches the upstream as ${target}`, async () => {
      const completion = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(completion.choices[0]?.message.content).toBe('ok');
      expect(seenTargets().at(-1)).toBe(target);
    });
  }
});

describe('OpenAI-compatible: the model stays in the body, the path is fixed', () => {
  for (const model of ['oa/..', 'oa/../../admin', 'oa/a b?c#d']) {
    it(`${model} -> POST /v1/chat/completions with model '${model.slice(3)}' in the body`, async () => {
      const completion = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(completion.choices[0]?.message.content).toBe('ok');
      const seen = upstream.requests.at(-1);
      expect(seen?.url).toBe('/v1/chat/completions');
      expect(seen?.json?.model).toBe(model.slice('oa/'.length));
    });
  }
});
