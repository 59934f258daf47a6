/**
 * Scripted behaviour for tests and demos, written into the prompt:
 * - `[[mock:error:<status>]]` the upstream answers with that HTTP status and an OpenAI error body;
 * - `[[mock:fail-after:<n>]]` a stream breaks (connection lost) after n content chunks;
 * - `[[mock:delay:<ms>]]` wait this long before answering.
 */
export interface MockDirectives {
  errorStatus?: number;
  failAfterChunks?: number;
  delayMs?: number;
}

const DIRECTIVE = /\[\[mock:(error|fail-after|delay):(\d{1,6})\]\]/g;

export function readDirectives(text: string): MockDirectives {
  const directives: MockDirectives = {};
  if (!text.includes('[[mock:')) return directives;
  for (const match of text.matchAll(DIRECTIVE)) {
    const value = Number(match[2]);
    if (match[1] === 'error' && value >= 400 && value <= 599) directives.errorStatus = value;
    if (match[1] === 'fail-after') directives.failAfterChunks = value;
    if (match[1] === 'delay') directives.delayMs = Math.min(value, 600_000);
  }
  return directives;
}
