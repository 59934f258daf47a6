import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse } from 'node-llama-cpp';
import { InvalidRequestError } from '../../errors.js';

function textOf(content: unknown, index: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) => {
        const typed = part as { type?: unknown; text?: unknown; refusal?: unknown } | null;
        if (typed?.type === 'text' && typeof typed.text === 'string') return typed.text;
        if (typed?.type === 'refusal' && typeof typed.refusal === 'string') return typed.refusal;
        throw new InvalidRequestError(
          `messages[${index}].content: in-process models take text only (got a '${String(typed?.type)}' part).`,
          `messages[${index}].content`,
        );
      })
      .join('');
  }
  throw new InvalidRequestError(
    `messages[${index}].content must be a string or a list of content parts.`,
    `messages[${index}].content`,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A tool's result as the template shows it: JSON when it is JSON, else the text. */
function resultOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

interface PendingCall {
  call: ChatModelFunctionCall;
  param: string;
  id: string;
  answered: boolean;
}

/** An assistant message's `tool_calls` as node-llama-cpp function calls, awaiting their results. */
function callsOf(toolCalls: unknown, index: number): PendingCall[] {
  if (toolCalls === undefined || toolCalls === null) return [];
  if (!Array.isArray(toolCalls))
    throw new InvalidRequestError(
      `messages[${index}].tool_calls must be a list of tool calls.`,
      `messages[${index}].tool_calls`,
    );
  return toolCalls.map((toolCall: unknown, position): PendingCall => {
    const param = `messages[${index}].tool_calls[${position}]`;
    const fn = isRecord(toolCall) ? toolCall.function : undefined;
    if (
      !isRecord(toolCall) ||
      typeof toolCall.id !== 'string' ||
      toolCall.type !== 'function' ||
      !isRecord(fn) ||
      typeof fn.name !== 'string' ||
      typeof fn.arguments !== 'string'
    )
      throw new InvalidRequestError(
        `${param} must be {id, type: 'function', function: {name, arguments}}.`,
        param,
      );
    let params: unknown;
    try {
      params = fn.arguments.trim() === '' ? undefined : JSON.parse(fn.arguments);
    } catch {
      throw new InvalidRequestError(
        `${param}.function.arguments is not valid JSON.`,
        `${param}.function.arguments`,
      );
    }
    return {
      call: { type: 'functionCall', name: fn.name, params, result: undefined },
      param,
      id: toolCall.id,
      answered: false,
    };
  });
}

/**
 * OpenAI chat messages as node-llama-cpp's chat history, ending with the model turn that the
 * chat template renders as the generation prompt.
 *
 * Tool calls are node-llama-cpp's function calls inside a model response, each with its result
 * from the `tool` message of the same `tool_call_id`. The assistant's text after the results
 * continues that same response, as node-llama-cpp models it; and when the chat ends with tool
 * results, the model continues that response rather than starting a new turn.
 */
export function chatHistoryOf(messages: unknown): ChatHistoryItem[] {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new InvalidRequestError("'messages' must be a non-empty list of messages.", 'messages');
  const history: ChatHistoryItem[] = [];
  /** The last model response while its calls await results or the text that follows them. */
  let open: { response: ChatModelResponse; calls: PendingCall[] } | undefined;
  const close = () => {
    const unanswered = open?.calls.find((pending) => !pending.answered);
    if (unanswered)
      throw new InvalidRequestError(
        `${unanswered.param} (id '${unanswered.id}') has no tool message with its result.`,
        unanswered.param,
      );
    open = undefined;
  };
  messages.forEach((message: unknown, index) => {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    const text = textOf(content, index);
    switch (role) {
      case 'system':
      case 'developer':
        close();
        history.push({ type: 'system', text });
        return;
      case 'user':
        close();
        history.push({ type: 'user', text });
        return;
      case 'assistant': {
        const calls = callsOf((message as { tool_calls?: unknown }).tool_calls, index);
        const continued = open?.calls.every((pending) => pending.answered) ? open.response : undefined;
        let response: ChatModelResponse;
        if (continued) response = continued;
        else {
          close();
          response = { type: 'model', response: [] };
          history.push(response);
        }
        // A new turn keeps its text even when empty, as a turn without tool calls always did.
        if (text !== '' || (!continued && calls.length === 0)) response.response.push(text);
        for (const pending of calls) response.response.push(pending.call);
        open = calls.length > 0 ? { response, calls } : undefined;
        return;
      }
      case 'tool': {
        const id = (message as { tool_call_id?: unknown }).tool_call_id;
        const pending = open?.calls.find((candidate) => candidate.id === id && !candidate.answered);
        if (!pending)
          throw new InvalidRequestError(
            `messages[${index}]: no assistant tool call with id '${String(id)}' comes before this tool message and still awaits its result.`,
            `messages[${index}].tool_call_id`,
          );
        pending.call.result = resultOf(text);
        pending.answered = true;
        return;
      }
      case 'function':
        throw new InvalidRequestError(
          `messages[${index}]: 'function' messages (the deprecated function calling) are not supported by in-process models; use tools.`,
          `messages[${index}].role`,
        );
      default:
        throw new InvalidRequestError(
          `messages[${index}].role must be one of system, developer, user, assistant, tool.`,
          `messages[${index}].role`,
        );
    }
  });
  const last = messages.at(-1) as { role?: unknown } | null;
  if (last?.role === 'tool' && open) {
    close();
    return history;
  }
  close();
  history.push({ type: 'model', response: [] });
  return history;
}
