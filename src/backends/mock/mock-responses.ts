import { estimateTokens, lastUserText, nowSeconds, splitText, stableId } from './mock-text.js';

export interface MockResponsesOptions {
  model: string;
  chunks: number;
}

function plan(body: Record<string, unknown>) {
  const text = typeof body.input === 'string' ? body.input : lastUserText(body.input);
  const inputTokens = estimateTokens(JSON.stringify(body.input ?? ''));
  const outputTokens = estimateTokens(text);
  const id = stableId('resp_', body);
  return {
    id,
    messageId: stableId('msg_', [id]),
    created: nowSeconds(),
    text,
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + outputTokens,
    },
  };
}

type Plan = ReturnType<typeof plan>;

function outputText(text: string) {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

function message(p: Plan, status: 'in_progress' | 'completed', content: unknown[]) {
  return { type: 'message', id: p.messageId, status, role: 'assistant', content };
}

function responseObject(
  p: Plan,
  body: Record<string, unknown>,
  options: MockResponsesOptions,
  done: boolean,
): Record<string, unknown> {
  return {
    id: p.id,
    object: 'response',
    created_at: p.created,
    status: done ? 'completed' : 'in_progress',
    completed_at: done ? p.created : null,
    error: null,
    incomplete_details: null,
    instructions: typeof body.instructions === 'string' ? body.instructions : null,
    max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
    model: options.model,
    output: done ? [message(p, 'completed', [outputText(p.text)])] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: null,
    store: false,
    temperature: typeof body.temperature === 'number' ? body.temperature : 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: typeof body.top_p === 'number' ? body.top_p : 1,
    truncation: 'disabled',
    usage: done ? p.usage : null,
    metadata: {},
  };
}

/** The echo model through the Responses API: one assistant message with the last user text. */
export function response(
  body: Record<string, unknown>,
  options: MockResponsesOptions,
): Record<string, unknown> {
  return responseObject(plan(body), body, options, true);
}

/** Named events in the order OpenAI sends them; each carries its sequence_number. */
export function responseEvents(
  body: Record<string, unknown>,
  options: MockResponsesOptions,
): Array<{ type: string; data: Record<string, unknown> }> {
  const p = plan(body);
  const events: Array<Record<string, unknown>> = [
    { type: 'response.created', response: responseObject(p, body, options, false) },
    { type: 'response.in_progress', response: responseObject(p, body, options, false) },
    { type: 'response.output_item.added', output_index: 0, item: message(p, 'in_progress', []) },
    {
      type: 'response.content_part.added',
      item_id: p.messageId,
      output_index: 0,
      content_index: 0,
      part: outputText(''),
    },
  ];
  for (const delta of splitText(p.text, options.chunks)) {
    events.push({
      type: 'response.output_text.delta',
      item_id: p.messageId,
      output_index: 0,
      content_index: 0,
      delta,
      logprobs: [],
    });
  }
  events.push(
    {
      type: 'response.output_text.done',
      item_id: p.messageId,
      output_index: 0,
      content_index: 0,
      text: p.text,
      logprobs: [],
    },
    {
      type: 'response.content_part.done',
      item_id: p.messageId,
      output_index: 0,
      content_index: 0,
      part: outputText(p.text),
    },
    {
      type: 'response.output_item.done',
      output_index: 0,
      item: message(p, 'completed', [outputText(p.text)]),
    },
    { type: 'response.completed', response: responseObject(p, body, options, true) },
  );
  return events.map((event, sequence_number) => ({
    type: String(event.type),
    data: { ...event, sequence_number },
  }));
}
