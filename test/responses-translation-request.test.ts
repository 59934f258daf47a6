import { describe, expect, it } from 'vitest';
import { responseOfChatCompletion } from '../src/backends/responses-translation/answer-translation.js';
import { chatRequestOf } from '../src/backends/responses-translation/request-translation.js';
import { UsageCount } from '../src/backends/responses-translation/usage-count.js';
import { GatewayError, UpstreamError } from '../src/errors.js';
import { expectResponse } from './support/spec-validator.js';

/**
 * The Responses API request as a chat completions request, and a chat completion as a Response
 * object: what is translated, and what is refused with a 400 naming the parameter.
 */
type Json = Record<string, unknown>;

const chat = (body: Json, stream = false) => chatRequestOf({ model: 'm', ...body }, 'upstream-m', stream);
/** How the translation backend counts a request's usage when its answer reports none. */
const countFor = (body: Json) => new UsageCount(body);

function refusal(body: Json): { status: number; param: string | null; message: string } {
  try {
    chat(body);
  } catch (error) {
    if (error instanceof GatewayError)
      return { status: error.status, param: error.param, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('request: Responses -> chat completions', () => {
  it('a string input is one user message; the upstream model name is used', () => {
    expect(chat({ input: 'hi' })).toEqual({
      model: 'upstream-m',
      messages: [{ role: 'user', content: 'hi' }],
    });
  });

  it('instructions come first as a system message; developer messages become system messages', () => {
    expect(
      chat({
        instructions: 'Be brief.',
        input: [
          { role: 'developer', content: [{ type: 'input_text', text: 'No emojis.' }] },
          { type: 'message', role: 'user', content: 'hi' },
        ],
      }).messages,
    ).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'system', content: 'No emojis.' },
      { role: 'user', content: 'hi' },
    ]);
  });

  it('user content parts: text, images by URL (with detail), files by data', () => {
    expect(
      chat({
        input: [
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'What is this?' },
              { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'low' },
              { type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,AAAA' },
            ],
          },
        ],
      }).messages,
    ).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
          { type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,AAAA' } },
        ],
      },
    ]);
  });

  it('assistant text then calls is one assistant turn; consecutive calls are grouped; outputs are tool messages', () => {
    const messages = chat({
      input: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
        { type: 'function_call', call_id: 'c1', name: 'weather', arguments: '{"city":"Paris"}' },
        { type: 'function_call', id: 'fc_2', call_id: 'c2', name: 'weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'c1', output: 'sunny' },
        { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'rain' }] },
        { type: 'function_call', call_id: 'c3', name: 'weather', arguments: '{}' },
      ],
    }).messages;
    expect(messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          { id: 'c2', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
      { role: 'tool', tool_call_id: 'c2', content: 'rain' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c3', type: 'function', function: { name: 'weather', arguments: '{}' } }],
      },
    ]);
  });

  it('settings: tools nested, tool_choice, max_output_tokens, text.format, sampling, user, reasoning, stream', () => {
    const body = chat(
      {
        input: 'hi',
        tools: [
          { type: 'function', name: 'f', description: 'd', parameters: { type: 'object' }, strict: true },
          { type: 'function', name: 'g' },
        ],
        tool_choice: 'required',
        parallel_tool_calls: false,
        max_output_tokens: 100,
        temperature: 0.5,
        top_p: 0.9,
        user: 'u-1',
        metadata: { team: 'a' },
        store: true,
        reasoning: { effort: 'low' },
        text: { format: { type: 'json_object' }, verbosity: 'low' },
      },
      true,
    );
    expect(body).toEqual({
      model: 'upstream-m',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [
        {
          type: 'function',
          function: { name: 'f', description: 'd', parameters: { type: 'object' }, strict: true },
        },
        { type: 'function', function: { name: 'g' } },
      ],
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 100,
      temperature: 0.5,
      top_p: 0.9,
      user: 'u-1',
      reasoning_effort: 'low',
      response_format: { type: 'json_object' },
      verbosity: 'low',
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('tool_choice: a named function and allowed_tools in chat nesting; plain text needs no response_format', () => {
    const named = chat({
      input: 'hi',
      tools: [{ type: 'function', name: 'f' }],
      tool_choice: { type: 'function', name: 'f' },
    });
    expect(named.tool_choice).toEqual({ type: 'function', function: { name: 'f' } });
    const allowed = chat({
      input: 'hi',
      tools: [{ type: 'function', name: 'f' }],
      tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'f' }] },
      text: { format: { type: 'text' } },
    });
    expect(allowed.tool_choice).toEqual({
      type: 'allowed_tools',
      allowed_tools: { mode: 'required', tools: [{ type: 'function', function: { name: 'f' } }] },
    });
    expect(allowed).not.toHaveProperty('response_format');
  });

  it.each([
    [{ previous_response_id: 'resp_1' }, 'previous_response_id'],
    [{ conversation: { id: 'conv_1' } }, 'conversation'],
    [{ background: true }, 'background'],
    [{ prompt: { id: 'pmpt_1' } }, 'prompt'],
    [
      {
        tools: [
          { type: 'function', name: 'f' },
          { type: 'file_search', vector_store_ids: [] },
        ],
      },
      'tools[1].type',
    ],
    [{ tool_choice: { type: 'web_search_preview' } }, 'tool_choice'],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0]'],
    [
      { input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] },
      'input[0].content[0].file_id',
    ],
    [
      { input: [{ role: 'system', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] },
      'input[0].content',
    ],
    [{ input: [{ role: 'tool', content: 'x' }] }, 'input[0].role'],
    [{ input: [] }, 'input'],
  ])('refuses %j with a 400 naming %s', (body, param) => {
    const refused = refusal({ input: 'hi', ...body });
    expect(refused).toMatchObject({ status: 400, param });
    expect(refused.message.length).toBeGreaterThan(20);
  });

  it('background: false and a null previous_response_id are no requests for state, so not refused', () => {
    expect(chat({ input: 'hi', background: false, previous_response_id: null }).messages).toHaveLength(1);
  });
});

describe('answer: chat completion -> Response object', () => {
  const body = { model: 'm', input: 'hi', instructions: 'Be brief.', max_output_tokens: 50 };
  const completion = (message: Json, finish: string) => ({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'upstream-m',
    choices: [
      { index: 0, message: { role: 'assistant', ...message }, logprobs: null, finish_reason: finish },
    ],
    usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
  });

  it('text and tool calls become a message and function_call items; usage in the Responses shape', () => {
    const response = responseOfChatCompletion(
      body,
      completion(
        {
          content: 'Checking.',
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
        },
        'tool_calls',
      ),
      'm',
      countFor(body),
    );
    expectResponse(response);
    expect(response).toMatchObject({
      object: 'response',
      status: 'completed',
      created_at: 1_700_000_000,
      model: 'upstream-m',
      instructions: 'Be brief.',
      max_output_tokens: 50,
      incomplete_details: null,
      store: false,
      output: [
        {
          type: 'message',
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: 'Checking.' }],
        },
        { type: 'function_call', status: 'completed', call_id: 'call_1', name: 'f', arguments: '{"a":1}' },
      ],
      usage: {
        input_tokens: 9,
        input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
        output_tokens: 3,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 12,
      },
    });
    expect(String(response.id)).toMatch(/^resp_[0-9a-f]{32}$/);
    // The gateway reads a JSON answer's usage from the end of its bytes: it must come last.
    expect(Object.keys(response).at(-1)).toBe('usage');
  });

  it('finish_reason length or content_filter: status incomplete with the reason', () => {
    const long = responseOfChatCompletion(
      body,
      completion({ content: 'Once upon' }, 'length'),
      'm',
      countFor(body),
    );
    expectResponse(long);
    expect(long).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
    const filtered = responseOfChatCompletion(
      body,
      completion({ content: null, refusal: 'No.' }, 'content_filter'),
      'm',
      countFor(body),
    );
    expectResponse(filtered);
    expect(filtered).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'content_filter' },
      output: [{ type: 'message', content: [{ type: 'refusal', refusal: 'No.' }] }],
    });
  });

  it('an answer without a choice is the backend failing', () => {
    expect(() => responseOfChatCompletion(body, { choices: [] }, 'm', countFor(body))).toThrow(UpstreamError);
  });
});
