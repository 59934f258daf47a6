/**
 * Bodies shaped like OpenAI's real answers, including fields a gateway does not know
 * (`service_tier`, `obfuscation`), for upstreams started by tests.
 */
export const FIXTURE_USAGE = {
  prompt_tokens: 12,
  completion_tokens: 5,
  total_tokens: 17,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};

export function chatCompletionFixture(model: string, content: string, n = 1) {
  return {
    id: 'chatcmpl-fixture',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    service_tier: 'default',
    system_fingerprint: 'fp_fixture',
    x_upstream_extra: { kept: true },
    choices: Array.from({ length: n }, (_, index) => ({
      index,
      message: { role: 'assistant', content: `${content} #${index}`, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: 'stop',
    })),
    usage: FIXTURE_USAGE,
  };
}

export function chatChunkFixtures(model: string, pieces: string[], includeUsage: boolean) {
  const base = {
    id: 'chatcmpl-fixture',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    service_tier: 'default',
    system_fingerprint: 'fp_fixture',
  };
  const usage = includeUsage ? { usage: null } : {};
  return [
    {
      ...base,
      choices: [
        {
          index: 0,
          delta: { role: 'assistant', content: '', refusal: null },
          logprobs: null,
          finish_reason: null,
        },
      ],
      ...usage,
      obfuscation: 'abc',
    },
    ...pieces.map((piece) => ({
      ...base,
      choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }],
      ...usage,
      obfuscation: 'xyz',
    })),
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...usage },
    ...(includeUsage ? [{ ...base, choices: [], usage: FIXTURE_USAGE }] : []),
  ];
}

export function toolCallChunkFixtures(model: string) {
  const base = {
    id: 'chatcmpl-tools',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    system_fingerprint: 'fp_fixture',
  };
  const delta = (d: Record<string, unknown>, finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta: d, logprobs: null, finish_reason: finish }],
  });
  return [
    delta({
      role: 'assistant',
      content: null,
      tool_calls: [
        { index: 0, id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '' } },
      ],
    }),
    delta({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
    delta({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
    delta({}, 'tool_calls'),
  ];
}
