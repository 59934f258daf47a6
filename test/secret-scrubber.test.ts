import { describe, expect, it } from 'vitest';
import { SecretScrubber } from '../src/backends/secret-scrubber.js';

/**
 * The scrubber on its own: every JSON spelling of a secret goes, what is left still parses as
 * the upstream's JSON did, and a text without a secret is returned as it came (the same bytes).
 */

const KEY = 'sk-ant/abc+DEF_123';
const HEX_KEY = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const scrubber = new SecretScrubber([KEY, HEX_KEY, '127.0.0.1:41501']);

/** A JSON document with the raw JSON-string text given as its message. */
const doc = (raw: string) => `{"m":"${raw}","n":123456789012345678901234567890}`;

function scrubbedMessage(raw: string): string {
  const out = scrubber.scrub(doc(raw));
  expect(out.endsWith(',"n":123456789012345678901234567890}')).toBe(true);
  return (JSON.parse(out) as { m: string }).m;
}

const unicodeEscape = (char: string, upper = false) => {
  const hex = (char.codePointAt(0) ?? 0).toString(16).padStart(4, '0');
  return `\\u${upper ? hex.toUpperCase() : hex}`;
};

describe('SecretScrubber', () => {
  it.each([
    ['literal', KEY],
    ['first character escaped', `${unicodeEscape('s')}${KEY.slice(1)}`],
    ['slash as \\/', KEY.replace('/', '\\/')],
    ['every character escaped, upper-case hex', [...KEY].map((c) => unicodeEscape(c, true)).join('')],
    [
      'alternating, mixed hex case',
      [...KEY].map((c, i) => (i % 2 ? unicodeEscape(c, i % 4 === 1) : c)).join(''),
    ],
  ])('takes a key written %s out of a JSON string, the rest untouched', (_name, raw) => {
    expect(scrubbedMessage(`bad \\\\${raw}\\n end`)).toBe('bad \\[redacted]\n end');
  });

  it.each([
    ['a backslash escape', `\\${HEX_KEY}`],
    ['the hex digits of a \\u escape', `\\u${HEX_KEY}`],
    ['the last hex digits of a \\u escape', `\\u00${HEX_KEY}`],
    ['an escape that spells its first character', `\\u0030${HEX_KEY.slice(1)}`],
  ])('leaves valid JSON when a literal key starts inside %s', (_name, raw) => {
    expect(scrubbedMessage(`x ${raw} y`)).toBe('x [redacted] y');
  });

  it('returns the very bytes when nothing matches, escapes and all', () => {
    const body = Buffer.from(doc('caf\\u00e9 \\u0073k-other \\/ \\"q\\"'));
    expect(scrubber.scrubBytes(body)).toBe(body);
    expect(scrubber.mayHold(Buffer.from('no backslash, no key'))).toBe(false);
  });

  it('takes out the union of overlapping secrets', () => {
    const overlapping = new SecretScrubber(['abcdef123456', 'xyzabc']);
    expect(overlapping.scrub('-xyzabcdef123456-')).toBe('-[redacted]-');
  });

  it('matches secrets with quotes, backslashes and characters outside the BMP in their JSON forms', () => {
    const odd = new SecretScrubber(['pa"ss\\word😀!']);
    const raw = JSON.stringify({ m: 'is pa"ss\\word😀!' });
    expect(odd.scrub(raw)).toBe('{"m":"is [redacted]"}');
    expect(odd.scrub('{"m":"is pa\\u0022ss\\u005Cword\\ud83d\\ude00!"}')).toBe('{"m":"is [redacted]"}');
  });

  it('with no secrets, changes nothing', () => {
    const none = new SecretScrubber([]);
    const body = Buffer.from('{"m":"\\u0073"}');
    expect(none.scrubBytes(body)).toBe(body);
    expect(none.scrub('anything')).toBe('anything');
  });
});
