import type { ServerResponse } from 'node:http';
import { FakeUpstream, type RecordedRequest, sendJson } from './fake-upstream.js';

/**
 * A fake Anthropic Messages API on 127.0.0.1: `POST /v1/messages` (JSON, or SSE when the request
 * says `stream: true`) and `GET /v1/models`, answering with what the test scripted and recording
 * every request, so tests assert the translated request as Anthropic would receive it.
 */

export interface AnthropicUsageFixture {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

export type ContentBlockFixture =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string };

export interface MessageFixture {
  id?: string;
  model?: string;
  content: ContentBlockFixture[];
  stop_reason: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal' | 'pause_turn';
  stop_sequence?: string | null;
  usage: AnthropicUsageFixture;
}

/** What the fake answers one request with. */
export type AnthropicReply =
  | { kind: 'message'; message: MessageFixture }
  | { kind: 'error'; status: number; type: string; message: string; headers?: Record<string, string> }
  /** Raw SSE events (a 200), for streams that break the rules: an error event, no message_stop. */
  | { kind: 'events'; events: Array<Record<string, unknown>> }
  /** No answer at all until the client goes away. */
  | { kind: 'hang' };

export type AnthropicScript = (request: RecordedRequest) => AnthropicReply;

export const DEFAULT_USAGE: AnthropicUsageFixture = { input_tokens: 11, output_tokens: 7 };

/** By default: echo the last user text. */
export const echoScript: AnthropicScript = (request) => {
  const messages = (request.json?.messages ?? []) as Array<{
    content: Array<{ type: string; text?: string }>;
  }>;
  const last = messages.at(-1)?.content.find((block) => block.type === 'text')?.text ?? '';
  return {
    kind: 'message',
    message: {
      content: [{ type: 'text', text: `echo: ${last}` }],
      stop_reason: 'end_turn',
      usage: DEFAULT_USAGE,
    },
  };
};

export function anthropicErrorBody(type: string, message: string) {
  return { type: 'error', error: { type, message }, request_id: 'req_fake_1' };
}

export function fullMessage(request: RecordedRequest, fixture: MessageFixture): Record<string, unknown> {
  return {
    id: fixture.id ?? 'msg_fake_1',
    type: 'message',
    role: 'assistant',
    model: fixture.model ?? String(request.json?.model ?? ''),
    content: fixture.content,
    stop_reason: fixture.stop_reason,
    stop_sequence: fixture.stop_sequence ?? null,
    usage: { cache_creation_input_tokens: 0, cache_read_input_tokens: 0, ...fixture.usage },
  };
}

/** Pieces of a string, as a model streams them. */
function pieces(text: string, size: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; at += size) out.push(text.slice(at, at + size));
  return out;
}

/** The event sequence the Messages API streams for this message, pings included. */
export function messageEvents(
  request: RecordedRequest,
  fixture: MessageFixture,
): Array<Record<string, unknown>> {
  const message = fullMessage(request, fixture);
  const { output_tokens: outputTokens, ...inputUsage } = message.usage as AnthropicUsageFixture;
  const events: Array<Record<string, unknown>> = [
    {
      type: 'message_start',
      message: {
        ...message,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...inputUsage, output_tokens: 1 },
      },
    },
    { type: 'ping' },
  ];
  fixture.content.forEach((block, index) => {
    switch (block.type) {
      case 'text':
        events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        for (const text of pieces(block.text, 4))
          events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } });
        break;
      case 'tool_use':
        events.push({
          type: 'content_block_start',
          index,
          content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
        });
        events.push({
          type: 'content_block_delta',
          index,
          delta: { type: 'input_json_delta', partial_json: '' },
        });
        for (const partial_json of pieces(JSON.stringify(block.input), 5))
          events.push({
            type: 'content_block_delta',
            index,
            delta: { type: 'input_json_delta', partial_json },
          });
        break;
      case 'thinking':
        events.push({
          type: 'content_block_start',
          index,
          content_block: { type: 'thinking', thinking: '' },
        });
        for (const thinking of pieces(block.thinking, 6))
          events.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking } });
        events.push({
          type: 'content_block_delta',
          index,
          delta: { type: 'signature_delta', signature: block.signature },
        });
        break;
      case 'redacted_thinking':
        events.push({ type: 'content_block_start', index, content_block: block });
        break;
    }
    events.push({ type: 'content_block_stop', index });
  });
  events.push({
    type: 'message_delta',
    delta: { stop_reason: fixture.stop_reason, stop_sequence: fixture.stop_sequence ?? null },
    usage: { output_tokens: outputTokens },
  });
  events.push({ type: 'message_stop' });
  return events;
}

/** Anthropic's SSE framing: `event: <type>` then `data: <json>`. */
export function sendAnthropicSse(res: ServerResponse, events: Array<Record<string, unknown>>): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  for (const event of events) res.write(`event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);
  res.end();
}

export class FakeAnthropic {
  readonly upstream = new FakeUpstream();
  script: AnthropicScript = echoScript;

  get requests(): RecordedRequest[] {
    return this.upstream.requests;
  }

  /** The JSON bodies of the `/v1/messages` requests so far. */
  messageBodies(): Array<Record<string, unknown>> {
    return this.requests.filter((r) => r.url.startsWith('/v1/messages')).map((r) => r.json ?? {});
  }

  lastBody(): Record<string, unknown> {
    const body = this.messageBodies().at(-1);
    if (!body) throw new Error('the fake Anthropic upstream saw no request');
    return body;
  }

  async start(): Promise<string> {
    this.upstream.on('POST', '/v1/messages', (request, res) => {
      const reply = this.script(request);
      if (reply.kind === 'error') {
        sendJson(res, reply.status, anthropicErrorBody(reply.type, reply.message), reply.headers ?? {});
        return;
      }
      if (reply.kind === 'hang') return;
      if (reply.kind === 'events') {
        sendAnthropicSse(res, reply.events);
        return;
      }
      if (request.json?.stream === true) sendAnthropicSse(res, messageEvents(request, reply.message));
      else sendJson(res, 200, fullMessage(request, reply.message));
    });
    this.upstream.on('GET', '/v1/models', (_request, res) =>
      sendJson(res, 200, {
        data: [
          {
            type: 'model',
            id: 'claude-sonnet-4-5',
            display_name: 'Claude Sonnet 4.5',
            created_at: '2025-09-29T00:00:00Z',
          },
        ],
        has_more: false,
        first_id: 'claude-sonnet-4-5',
        last_id: 'claude-sonnet-4-5',
      }),
    );
    return this.upstream.start();
  }

  stop(): Promise<void> {
    return this.upstream.stop();
  }
}
