import { createHash } from 'node:crypto';

/** What the mock echoes: the text of the last user turn, whatever shape the API gave it. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (typeof part === 'string') return part;
        const record = part as { type?: unknown; text?: unknown };
        return typeof record?.text === 'string' ? record.text : '';
      })
      .join('');
  }
  return '';
}

export function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return typeof messages === 'string' ? messages : '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i] as { role?: unknown; content?: unknown } | undefined;
    if (message?.role === 'user') return textOf(message.content);
  }
  return '';
}

/** A stable, documented approximation: one token per four characters, at least one. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

export function stableId(prefix: string, value: unknown): string {
  return `${prefix}${createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 24)}`;
}

/** Cuts text into at most `count` pieces of near-equal length (never an empty list). */
export function splitText(text: string, count: number): string[] {
  const chars = Array.from(text);
  if (chars.length === 0) return [''];
  const pieces = Math.min(count, chars.length);
  const size = Math.ceil(chars.length / pieces);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
