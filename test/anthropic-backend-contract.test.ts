import { afterAll, beforeAll } from 'vitest';
import { AnthropicBackend } from '../src/backends/anthropic/anthropic-backend.js';
import { parseConfig } from '../src/config/load-config.js';
import type { BackendConfig } from '../src/config/schema.js';
import { runBackendContract } from '../src/testing/index.js';
import { type AnthropicScript, FakeAnthropic } from './support/fake-anthropic.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
} from './support/spec-validator.js';

/**
 * The backend contract every adapter keeps (src/testing/backend-contract.ts), run against the
 * Anthropic adapter and a fake Messages API that echoes the last user text and fails on cue.
 */

const echoExactly: AnthropicScript = (request) => {
  const messages = (request.json?.messages ?? []) as Array<{
    content: Array<{ type: string; text?: string }>;
  }>;
  const text = messages.at(-1)?.content.find((block) => block.type === 'text')?.text ?? '';
  if (text === '[[fail:429]]')
    return { kind: 'error', status: 429, type: 'rate_limit_error', message: 'Slow down' };
  if (text === '[[fail:500]]')
    return { kind: 'error', status: 500, type: 'api_error', message: 'Internal error' };
  if (text === '[[slow]]') return { kind: 'hang' };
  return {
    kind: 'message',
    message: {
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 5, output_tokens: 2 },
    },
  };
};

const fake = new FakeAnthropic();
fake.script = echoExactly;
let baseUrl = '';

beforeAll(async () => {
  baseUrl = await fake.start();
});

afterAll(async () => {
  await fake.stop();
});

runBackendContract({
  name: 'anthropic (a fake Messages API)',
  make: () => {
    const config = parseConfig(
      { backends: { b: { type: 'anthropic', baseUrl, apiKey: 'sk-ant-contract' } }, models: {} },
      {},
      'test',
    );
    return new AnthropicBackend('b', config.backends.b as Extract<BackendConfig, { type: 'anthropic' }>);
  },
  model: 'claude-sonnet-4-5',
  echoes: true,
  triggers: {
    clientError: { body: { messages: [{ role: 'user', content: '[[fail:429]]' }] }, status: 429 },
    serverError: { messages: [{ role: 'user', content: '[[fail:500]]' }] },
    slow: { messages: [{ role: 'user', content: '[[slow]]' }] },
  },
  validate: {
    chatCompletion: expectChatCompletion,
    chatCompletionChunk: expectChatCompletionChunk,
    completion: expectCompletion,
    completionChunk: expectCompletionChunk,
  },
});
