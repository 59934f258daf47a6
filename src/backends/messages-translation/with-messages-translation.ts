import { UpstreamError } from '../../errors.js';
import type { Json } from '../../json-values.js';
import {
  type CountTokensRequest,
  countTokensRequest,
  type MessagesRequest,
  messagesRequest,
} from '../../schemas/anthropic/messages.js';
import { parseRequestBody } from '../../schemas/parse-input.js';
import { TokenCounter } from '../../usage/token-counter.js';
import { estimateChatPromptTokens } from '../../usage/token-estimate.js';
import type { Backend, BackendCall, BackendResponse, Endpoint, JsonCall } from '../backend.js';
import { eventsOfChatAnswer, eventsOfChatStream } from './answer-events.js';
import { ChatStreamTranslator } from './chat-stream-to-events.js';
import { type AnswerContext, messageOfChat } from './chat-to-message.js';
import type { ChatMessage } from './content-to-chat.js';
import { chatRequestOf, type OutputTokensField } from './messages-to-chat.js';
import { readChatAnswer } from './read-chat-answer.js';

export interface MessagesTranslationOptions {
  /**
   * The chat field that carries `max_tokens`. `max_tokens` (the default) is the one every
   * OpenAI-compatible server reads; OpenAI's reasoning models take only `max_completion_tokens`.
   */
  outputTokensField?: OutputTokensField;
}

/**
 * Anthropic's Messages API on a backend that speaks only chat completions: a `messages` call is
 * sent as a `chat.completions` call (messages-to-chat.ts) and its answer, JSON or stream, comes
 * back in Messages shapes (chat-to-message.ts, chat-stream-to-events.ts). Every other call goes
 * to the backend untouched. A backend that serves `messages` itself (Anthropic), or serves no
 * chat, is returned as it is.
 */
export function withMessagesTranslation(backend: Backend, options: MessagesTranslationOptions = {}): Backend {
  if (backend.supports('messages') || !backend.supports('chat.completions')) return backend;
  return new MessagesTranslatingBackend(backend, options.outputTokensField ?? 'max_tokens');
}

class MessagesTranslatingBackend implements Backend {
  readonly name: string;
  readonly type: string;

  /** Only where the inner backend has it: its presence says the backend can be unavailable. */
  readonly unavailableForMs?: () => number | undefined;

  constructor(
    private readonly inner: Backend,
    private readonly outputTokensField: OutputTokensField,
  ) {
    this.name = inner.name;
    this.type = inner.type;
    const unavailable = inner.unavailableForMs;
    if (unavailable) this.unavailableForMs = () => unavailable.call(inner);
  }

  supports(endpoint: Endpoint): boolean {
    return endpoint === 'messages' || endpoint === 'messages.count_tokens' || this.inner.supports(endpoint);
  }

  send(call: BackendCall): Promise<BackendResponse> {
    if (call.kind === 'json' && call.endpoint === 'messages') return this.translate(call);
    if (call.kind === 'json' && call.endpoint === 'messages.count_tokens') return this.countTokens(call);
    return this.inner.send(call);
  }

  listModels(signal: AbortSignal): Promise<string[]> {
    return this.inner.listModels(signal);
  }

  checkHealth(signal: AbortSignal): Promise<void> {
    return this.inner.checkHealth(signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Counted by the backend's model where it can say (an in-process model's tokenizer and chat
   * template: exact); a chat server cannot count a prompt without running it, so there the
   * gateway counts the translated conversation with its own tokenizer. The header says which.
   */
  private async countTokens(call: JsonCall): Promise<BackendResponse> {
    const request = parseRequestBody(countTokensRequest, call.body) as CountTokensRequest;
    const { body, messages } = chatRequestOf(
      { ...request, max_tokens: 1 },
      call.model,
      this.outputTokensField,
    );
    const exact = this.inner.countChatTokens ? await this.inner.countChatTokens(call.model, body) : undefined;
    return {
      status: 200,
      contentType: 'application/json',
      headers: { 'x-tollgate-token-count': exact === undefined ? 'estimated' : 'exact' },
      body: [Buffer.from(JSON.stringify({ input_tokens: exact ?? promptTokens(messages, body.tools) }))],
    };
  }

  private async translate(call: JsonCall): Promise<BackendResponse> {
    // The route validated this body already; read again here for its typed form.
    const request = parseRequestBody(messagesRequest, call.body) as MessagesRequest;
    const { body, messages } = chatRequestOf(request, call.model, this.outputTokensField);
    const context: AnswerContext = {
      model: call.model,
      stopSequences: request.stop_sequences ?? [],
      countInputTokens: () => promptTokens(messages, body.tools),
      counted: { usage: false },
    };
    const usageCounted = () => context.counted.usage;
    const response = await this.inner.send({
      kind: 'json',
      endpoint: 'chat.completions',
      model: call.model,
      publicModel: call.publicModel,
      signal: call.signal,
      requestId: call.requestId,
      body,
      stream: call.stream,
    });
    const headers = relayedHeaders(response.headers);
    const streamed = response.contentType.startsWith('text/event-stream');
    if (call.stream && streamed) {
      return {
        status: response.status,
        contentType: 'text/event-stream; charset=utf-8',
        headers,
        body: eventsOfChatStream(response.body, new ChatStreamTranslator(context)),
        usageCounted,
        // An in-process model knows what it used until a client that left stopped it: exact.
        partialUsage: response.partialUsage,
      };
    }
    if (streamed) {
      // Its connection goes back (or away) rather than hanging on a stream no one reads.
      if (Symbol.asyncIterator in response.body) await response.body[Symbol.asyncIterator]().return?.();
      throw new UpstreamError('The upstream answered a stream to a request that asked for none.');
    }
    const answer = await readChatAnswer(response.body);
    // An error instead of a completion goes on as it came: the gateway reads it as it reads the
    // same answer to a chat completions request (its status and type), then tells it in
    // Anthropic's envelope, as it tells any upstream's error on this surface.
    if (answer.error) return errorAnswer(answer.error, headers);
    if (call.stream) {
      return {
        status: response.status,
        contentType: 'text/event-stream; charset=utf-8',
        headers,
        body: eventsOfChatAnswer(answer.completion, new ChatStreamTranslator(context)),
        usageCounted,
      };
    }
    const message = messageOfChat(answer.completion, context);
    return {
      status: response.status,
      contentType: 'application/json',
      headers,
      body: [Buffer.from(JSON.stringify(message))],
      usageCounted,
    };
  }
}

/**
 * The error as an answer the gateway fails with: a 200 whatever 2xx the upstream said (it reads
 * an error in a JSON answer on a 200 only), the body the error alone (nothing that reads as a reply).
 */
function errorAnswer(error: Json, headers: Record<string, string>): BackendResponse {
  return {
    status: 200,
    contentType: 'application/json',
    headers,
    body: [Buffer.from(JSON.stringify(error))],
  };
}

/** The prompt as the gateway counts it: the messages, and the tool schemas the model also reads. */
function promptTokens(messages: readonly ChatMessage[], tools: unknown): number {
  const counter = new TokenCounter();
  const tokens = estimateChatPromptTokens(messages, counter);
  return tools === undefined ? tokens : tokens + counter.count(JSON.stringify(tools));
}

/** The upstream's headers minus those that described its own bytes. */
function relayedHeaders(headers: Record<string, string>): Record<string, string> {
  const {
    'content-length': _length,
    'content-type': _type,
    'content-encoding': _encoding,
    ...rest
  } = headers;
  return rest;
}
