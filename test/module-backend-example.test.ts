import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
// By the package's name, as a module author imports it (Node and vitest resolve a package's own
// name through its "exports"): the built dist/, which the global setup keeps current.
import { loadModuleBackend, runBackendContract } from 'tollgate/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { expectChatCompletion, expectChatCompletionChunk, validateSchema } from './support/spec-validator.js';

/**
 * examples/backends/echo-function.mjs, the documented example module: the Backend contract
 * suite on it (as its author would run it), then the official SDK end to end through a
 * gateway configured with `type: module`, in-process and as the built gateway process.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/backends/echo-function.mjs');

runBackendContract({
  name: 'examples/backends/echo-function.mjs',
  make: () => loadModuleBackend('./examples/backends/echo-function.mjs', { name: 'echo', configDir: ROOT }),
  echoes: true,
  // It refuses a chat without a user message; it has no way to fail like an upstream or to be slow.
  triggers: { clientError: { body: { messages: [] }, status: 400 } },
  validate: { chatCompletion: expectChatCompletion, chatCompletionChunk: expectChatCompletionChunk },
});

describe('the example module through the gateway, with the OpenAI SDK', () => {
  let gateway: TestGateway;
  let client: OpenAI;
  beforeAll(async () => {
    gateway = await startGateway({
      backends: { echo: { type: 'module', module: EXAMPLE, options: { shout: true } } },
      models: { echo: { backend: 'echo' } },
    });
    client = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it('answers chat as JSON', async () => {
    const completion = await client.chat.completions.create({
      model: 'echo',
      messages: [{ role: 'user', content: 'hello module' }],
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.message.content).toBe('HELLO MODULE');
    expect(completion.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
  });

  it('streams chat, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'echo',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'one two three' }],
    });
    let text = '';
    let usage: unknown;
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
      usage ??= chunk.usage ?? undefined;
    }
    expect(text).toBe('ONE TWO THREE');
    expect(usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  });

  it('its own refusal (a GatewayError from the package it imports) reaches the SDK as a 400', async () => {
    const refused: unknown = await client.chat.completions
      .create({ model: 'echo', messages: [{ role: 'system', content: 'no user here' }] })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    const error = (refused as InstanceType<typeof OpenAI.BadRequestError>).error;
    expectEnvelope({ error }, { type: 'invalid_request_error', code: null, param: 'messages' });
    expect((error as { message: string }).message).toBe('This model needs a user message.');
  });

  it('an endpoint it does not serve is a clear 400', async () => {
    const response = await fetch(`${gateway.baseURL}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'echo', input: 'x' }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string } };
    validateSchema('ErrorResponse', body);
    expect(body.error.code).toBe('unsupported_endpoint');
  });
});

describe('the example module in the built gateway (dist/), as `npm start` runs it', () => {
  let running: GatewayProcess;
  beforeAll(async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-example-module-'));
    const config = join(folder, 'tollgate.yaml');
    writeFileSync(
      config,
      `auth: none
backends:
  echo:
    type: module
    module: ${JSON.stringify(EXAMPLE)}
models:
  echo: { backend: echo }
`,
    );
    running = await startGatewayProcess({ TOLLGATE_CONFIG: config });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('loads it (its `tollgate` import resolving to dist/) and answers the SDK', async () => {
    const client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'echo',
      messages: [{ role: 'user', content: 'built' }],
    });
    expect(completion.choices[0]?.message.content).toBe('built');
    const refused = await client.chat.completions.create({ model: 'echo', messages: [] }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
  });
});
