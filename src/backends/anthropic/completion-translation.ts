import { InvalidRequestError } from '../../errors.js';

type Json = Record<string, unknown>;

/**
 * Legacy completions on a Claude model: the prompt becomes one user message and the request goes
 * the chat way; the answer comes back as a `text_completion`. What only a raw completion model can
 * do (several prompts, echo, suffix, best_of, logprobs) is refused with a 400 naming the field.
 */
export function completionToChatBody(body: Json): Json {
  const prompt = singlePrompt(body.prompt);
  if (body.echo === true) refuse("'echo' is not supported by Claude models.", 'echo');
  if (typeof body.suffix === 'string' && body.suffix !== '')
    refuse("'suffix' is not supported by Claude models.", 'suffix');
  if (typeof body.best_of === 'number' && body.best_of > 1)
    refuse("Invalid 'best_of': Claude models return one completion per request.", 'best_of');
  if (typeof body.logprobs === 'number' && body.logprobs > 0)
    refuse("'logprobs' is not supported by Claude models.", 'logprobs');
  const {
    prompt: _prompt,
    echo: _echo,
    suffix: _suffix,
    best_of: _bestOf,
    logprobs: _logprobs,
    ...rest
  } = body;
  return { ...rest, messages: [{ role: 'user', content: prompt }] };
}

function singlePrompt(prompt: unknown): string {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') return prompt[0];
  return refuse(
    "Invalid 'prompt': Claude models take one text prompt per request (not several, nor token ids).",
    'prompt',
  );
}

function refuse(message: string, param: string): never {
  throw new InvalidRequestError(message, param);
}

/** A `chat.completion` (as message-to-chat.ts builds it) as a `text_completion`. */
export function chatToCompletion(chat: Json): Json {
  const choice = (chat.choices as Json[] | undefined)?.[0] ?? {};
  const message = (choice.message ?? {}) as Json;
  return {
    id: chat.id,
    object: 'text_completion',
    created: chat.created,
    model: chat.model,
    choices: [
      {
        text: typeof message.content === 'string' ? message.content : '',
        index: 0,
        logprobs: null,
        finish_reason: choice.finish_reason,
      },
    ],
    usage: chat.usage,
  };
}
