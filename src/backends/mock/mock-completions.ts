import { estimateTokens, nowSeconds, splitText, stableId } from './mock-text.js';

export interface MockCompletionOptions {
  model: string;
  chunks: number;
}

/** Legacy prompts: a string, strings, a token array or token arrays. */
function promptsOf(prompt: unknown): string[] {
  if (typeof prompt === 'string') return [prompt];
  if (!Array.isArray(prompt) || prompt.length === 0) return [''];
  if (prompt.every((item) => typeof item === 'number')) return [prompt.join(' ')];
  return prompt.map((item) => (Array.isArray(item) ? item.join(' ') : String(item)));
}

function plan(body: Record<string, unknown>) {
  const prompts = promptsOf(body.prompt);
  const n = Math.min(Math.max(Number(body.n ?? 1) || 1, 1), 16);
  const texts = prompts.flatMap((prompt) => Array.from({ length: n }, () => prompt));
  const promptTokens = prompts.reduce((sum, prompt) => sum + estimateTokens(prompt), 0);
  const completionTokens = texts.reduce((sum, text) => sum + estimateTokens(text), 0);
  const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
  return {
    id: stableId('cmpl-', body),
    created: nowSeconds(),
    texts,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
    includeUsage: streamOptions?.include_usage === true,
  };
}

/** Echoes each prompt back as its completion, n times, indexed prompt-major like OpenAI. */
export function completion(
  body: Record<string, unknown>,
  options: MockCompletionOptions,
): Record<string, unknown> {
  const p = plan(body);
  return {
    id: p.id,
    object: 'text_completion',
    created: p.created,
    model: options.model,
    system_fingerprint: 'fp_tollgate_mock',
    choices: p.texts.map((text, index) => ({ index, text, logprobs: null, finish_reason: 'stop' })),
    usage: p.usage,
  };
}

export function completionChunks(
  body: Record<string, unknown>,
  options: MockCompletionOptions,
): Record<string, unknown>[] {
  const p = plan(body);
  const base = { id: p.id, object: 'text_completion', created: p.created, model: options.model };
  const out: Record<string, unknown>[] = [];
  p.texts.forEach((text, index) => {
    const pieces = splitText(text, options.chunks);
    pieces.forEach((piece, i) => {
      out.push({
        ...base,
        choices: [
          { index, text: piece, logprobs: null, finish_reason: i === pieces.length - 1 ? 'stop' : null },
        ],
      });
    });
  });
  if (p.includeUsage) out.push({ ...base, choices: [], usage: p.usage });
  return out;
}
