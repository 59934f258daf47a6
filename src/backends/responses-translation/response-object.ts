import { randomBytes } from 'node:crypto';
import { isObject, type Json } from '../../json-values.js';
import { isChargeableUsage } from '../credible-usage.js';

/**
 * The Response object (`object: "response"`) built around a translated chat answer: the
 * request's own settings echoed as OpenAI echoes them, the output items, the usage. Shared by
 * the JSON answer and by every stream event that carries the whole response.
 */

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete' | 'failed';

/**
 * An output item's status: `incomplete` for the one being generated when the answer was cut
 * short (max_output_tokens, a content filter), as OpenAI marks it; the items before it were done.
 */
export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface ResponseState {
  id: string;
  createdAt: number;
  model: string;
  status: ResponseStatus;
  output: Json[];
  /** Chat's finish_reason, when the answer said it ended early. */
  incompleteReason?: 'max_output_tokens' | 'content_filter' | undefined;
  error?: { code: string; message: string } | undefined;
  usage: Json | undefined;
}

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** An id like OpenAI's: a prefix and random hex (`resp_`, `msg_`, `fc_`, `call_`). */
export function newId(prefix: string): string {
  return `${prefix}${randomBytes(16).toString('hex')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Chat's usage object in the Responses API's names; undefined when the chat answer had none, and
 * when what it had is not counts (isCredibleUsage) holding both a prompt and a completion count:
 * renamed, a missing or negative count became a 0 the gateway charged as given (a free prompt).
 * Undefined, the translation counts the answer itself, as for an answer without usage (UsageCount).
 */
export function responseUsage(chat: unknown): Json | undefined {
  if (!isObject(chat) || !isChargeableUsage(chat, true)) return undefined;
  return renamedUsage(chat);
}

/** The gateway's own counts in the Responses API's names. */
export function countedResponseUsage(input: number, output: number): Json {
  return renamedUsage({ prompt_tokens: input, completion_tokens: output });
}

/** The names as accounting reads them (`prompt_tokens ?? input_tokens`: credible-usage.ts). */
function renamedUsage(chat: Json): Json {
  const input = count(chat.prompt_tokens ?? chat.input_tokens);
  const output = count(chat.completion_tokens ?? chat.output_tokens);
  const promptDetails = isObject(chat.prompt_tokens_details) ? chat.prompt_tokens_details : {};
  const completionDetails = isObject(chat.completion_tokens_details) ? chat.completion_tokens_details : {};
  // Anthropic's cache writes (its chat usage carries them beside OpenAI's fields) stay visible
  // and priced as writes (cost.ts reads cache_write_tokens): dropped, they would be charged as
  // plain input. Their split by lifetime is not carried: 1-hour writes are priced as 5-minute ones.
  const writes = count(promptDetails.cache_write_tokens) || count(chat.cache_creation_input_tokens);
  return {
    input_tokens: input,
    input_tokens_details: {
      cached_tokens: count(promptDetails.cached_tokens),
      cache_write_tokens: writes,
    },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: count(completionDetails.reasoning_tokens) },
    total_tokens: typeof chat.total_tokens === 'number' ? chat.total_tokens : input + output,
  };
}

/** Chat's finish_reason as the reason a response is incomplete, if it is. */
export function incompleteReasonOf(finishReason: unknown): ResponseState['incompleteReason'] {
  if (finishReason === 'length') return 'max_output_tokens';
  if (finishReason === 'content_filter') return 'content_filter';
  return undefined;
}

/** A function tool as the Response echoes it (the spec requires `strict` and `parameters`). */
function echoedTool(tool: unknown): unknown {
  if (!isObject(tool)) return tool;
  return {
    ...tool,
    description: tool.description ?? null,
    parameters: tool.parameters ?? null,
    strict: tool.strict ?? null,
  };
}

/** The Response object for `state`, echoing the request's settings. */
export function responseObject(body: Json, state: ResponseState): Json {
  const text = isObject(body.text) ? body.text : {};
  const done = state.status !== 'in_progress';
  return {
    id: state.id,
    object: 'response',
    created_at: state.createdAt,
    status: state.status,
    completed_at: state.status === 'completed' ? nowSeconds() : null,
    error: state.error ?? null,
    incomplete_details: state.incompleteReason ? { reason: state.incompleteReason } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
    model: state.model,
    output: state.output,
    parallel_tool_calls: typeof body.parallel_tool_calls === 'boolean' ? body.parallel_tool_calls : true,
    previous_response_id: null,
    reasoning: isObject(body.reasoning) ? body.reasoning : null,
    // Never stored, whatever the client asked: nothing can fetch or continue it later.
    store: false,
    temperature: typeof body.temperature === 'number' ? body.temperature : 1,
    text: { ...text, format: isObject(text.format) ? text.format : { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools.map(echoedTool) : [],
    top_p: typeof body.top_p === 'number' ? body.top_p : 1,
    truncation: typeof body.truncation === 'string' ? body.truncation : 'disabled',
    user: typeof body.user === 'string' ? body.user : null,
    metadata: isObject(body.metadata) ? body.metadata : {},
    // Last: the gateway reads a JSON answer's usage by searching from the end of its bytes.
    usage: done ? (state.usage ?? null) : null,
  };
}

export function outputText(text: string): Json {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

export function messageItem(id: string, status: ItemStatus, content: Json[]): Json {
  return { id, type: 'message', status, role: 'assistant', content };
}

export function functionCallItem(
  id: string,
  status: ItemStatus,
  call: { callId: string; name: string; arguments: string },
): Json {
  return {
    id,
    type: 'function_call',
    status,
    call_id: call.callId,
    name: call.name,
    arguments: call.arguments,
  };
}

/**
 * A redacted thinking block's data goes out as `encrypted_content` behind this tag, so that it
 * comes back as a redacted block; a plain thinking block's is its signature (base64: no colon).
 */
export const REDACTED_PREFIX = 'redacted_thinking:';

/** What a reasoning item carries: the thinking text (its summary) and the block's signature. */
export interface Reasoning {
  text: string;
  encryptedContent: string | null;
}

/** One of a chat answer's `thinking_blocks` (Claude's, signed) as what its reasoning item says. */
export function reasoningOfThinkingBlock(block: unknown): Reasoning | undefined {
  if (!isObject(block)) return undefined;
  if (block.type === 'thinking' && typeof block.thinking === 'string')
    return {
      text: block.thinking,
      encryptedContent:
        typeof block.signature === 'string' && block.signature !== '' ? block.signature : null,
    };
  if (block.type === 'redacted_thinking' && typeof block.data === 'string')
    return { text: '', encryptedContent: `${REDACTED_PREFIX}${block.data}` };
  return undefined;
}

export function reasoningItem(id: string, status: ItemStatus, reasoning: Reasoning): Json {
  return {
    id,
    type: 'reasoning',
    status,
    summary: reasoning.text === '' ? [] : [{ type: 'summary_text', text: reasoning.text }],
    encrypted_content: reasoning.encryptedContent,
  };
}
