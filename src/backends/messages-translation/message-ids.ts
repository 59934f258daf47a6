import { randomBytes } from 'node:crypto';

/** Anthropic-style ids: `msg_` for a message, `toolu_` for a tool use. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomId(length: number): string {
  const bytes = randomBytes(length);
  let id = '';
  for (const byte of bytes) id += ALPHABET[byte % ALPHABET.length];
  return id;
}

/** The chat answer's own id under Anthropic's prefix, so one answer is one id in both logs. */
export function messageIdOf(chatId: unknown): string {
  const bare = typeof chatId === 'string' ? chatId.replace(/^chatcmpl-/, '') : '';
  return `msg_${bare || randomId(24)}`;
}

/** A tool call the upstream gave no id (some local servers): clients need one to answer it. */
export function toolUseIdOf(callId: unknown): string {
  return typeof callId === 'string' && callId !== '' ? callId : `toolu_${randomId(24)}`;
}
