import { lastUserText, nowSeconds, splitText, stableId } from './mock-text.js';
import { chatUsage } from './mock-usage.js';

export interface MockChatOptions {
  model: string;
  chunks: number;
}

interface ToolChoice {
  name: string;
}

interface ChatPlan {
  id: string;
  created: number;
  promptText: string;
  text: string;
  tool: ToolChoice | undefined;
  n: number;
  includeUsage: boolean;
}

const FINGERPRINT = 'fp_tollgate_mock';

function pickTool(body: Record<string, unknown>): ToolChoice | undefined {
  const tools = body.tools;
  if (!Array.isArray(tools) || tools.length === 0 || body.tool_choice === 'none') return undefined;
  const forced = body.tool_choice as { function?: { name?: unknown } } | undefined;
  if (typeof forced?.function?.name === 'string') return { name: forced.function.name };
  const first = tools[0] as { function?: { name?: unknown } } | undefined;
  return typeof first?.function?.name === 'string' ? { name: first.function.name } : undefined;
}

function plan(body: Record<string, unknown>): ChatPlan {
  const text = lastUserText(body.messages);
  const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
  return {
    id: stableId('chatcmpl-', body),
    created: nowSeconds(),
    promptText: JSON.stringify(body.messages ?? ''),
    text,
    tool: pickTool(body),
    n: Math.min(Math.max(Number(body.n ?? 1) || 1, 1), 16),
    includeUsage: streamOptions?.include_usage === true,
  };
}

function toolArguments(p: ChatPlan): string {
  return JSON.stringify({ input: p.text });
}

function toolCallId(p: ChatPlan, index: number): string {
  return stableId('call_', [p.id, index]);
}

function usageOf(p: ChatPlan) {
  const completion = p.tool ? toolArguments(p) : p.text;
  return chatUsage(
    p.promptText,
    Array.from({ length: p.n }, () => completion),
  );
}

/** The echo model: replies with the last user message, or calls the first (or forced) tool. */
export function chatCompletion(
  body: Record<string, unknown>,
  options: MockChatOptions,
): Record<string, unknown> {
  const p = plan(body);
  return {
    id: p.id,
    object: 'chat.completion',
    created: p.created,
    model: options.model,
    system_fingerprint: FINGERPRINT,
    choices: Array.from({ length: p.n }, (_, index) => ({
      index,
      message: p.tool
        ? {
            role: 'assistant',
            content: null,
            refusal: null,
            annotations: [],
            tool_calls: [
              {
                id: toolCallId(p, index),
                type: 'function',
                function: { name: p.tool.name, arguments: toolArguments(p) },
              },
            ],
          }
        : { role: 'assistant', content: p.text, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: p.tool ? 'tool_calls' : 'stop',
    })),
    usage: usageOf(p),
  };
}

/** The same reply as chat.completion.chunk objects, choices interleaved like OpenAI's. */
export function chatCompletionChunks(
  body: Record<string, unknown>,
  options: MockChatOptions,
): Record<string, unknown>[] {
  const p = plan(body);
  const base = { id: p.id, object: 'chat.completion.chunk', created: p.created, model: options.model };
  const usageField = p.includeUsage ? { usage: null } : {};
  const chunk = (index: number, delta: Record<string, unknown>, finish: string | null) => ({
    ...base,
    system_fingerprint: FINGERPRINT,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...usageField,
  });
  const pieces = splitText(p.tool ? toolArguments(p) : p.text, options.chunks);
  const out: Record<string, unknown>[] = [];
  for (let index = 0; index < p.n; index++) {
    out.push(
      chunk(
        index,
        p.tool
          ? {
              role: 'assistant',
              content: null,
              tool_calls: [
                {
                  index: 0,
                  id: toolCallId(p, index),
                  type: 'function',
                  function: { name: p.tool.name, arguments: '' },
                },
              ],
            }
          : { role: 'assistant', content: '', refusal: null },
        null,
      ),
    );
  }
  for (const piece of pieces) {
    for (let index = 0; index < p.n; index++) {
      out.push(
        chunk(
          index,
          p.tool ? { tool_calls: [{ index: 0, function: { arguments: piece } }] } : { content: piece },
          null,
        ),
      );
    }
  }
  for (let index = 0; index < p.n; index++) out.push(chunk(index, {}, p.tool ? 'tool_calls' : 'stop'));
  if (p.includeUsage) {
    out.push({ ...base, system_fingerprint: FINGERPRINT, choices: [], usage: usageOf(p) });
  }
  return out;
}
