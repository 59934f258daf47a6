import type { FakeUpstream } from './fake-upstream.js';

/** What the routing suites share: upstream handlers' type and the answers they build. */
export type UpstreamHandler = Parameters<FakeUpstream['on']>[2];

export const CHAT = '/v1/chat/completions';
export const ROUTING_USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };

/** A chat completion whose content (and model) names who answered. */
export function completion(from: string) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: from,
    choices: [
      { index: 0, message: { role: 'assistant', content: from }, finish_reason: 'stop', logprobs: null },
    ],
    usage: ROUTING_USAGE,
  };
}

export function chunk(content: string) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { content }, finish_reason: null, logprobs: null }],
  };
}
