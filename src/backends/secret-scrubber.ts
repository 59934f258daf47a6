const REDACTED = '[redacted]';
const BACKSLASH = 0x5c;
const HEX_DIGIT = /^[0-9a-fA-F]$/;

/** JSON's two-character escapes, by the character each stands for. */
const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '/': '\\/',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/**
 * Takes the gateway's own secrets (upstream keys, credential headers, the upstream's address)
 * out of upstream text bound for clients and logs, in any way JSON can spell them: a JSON
 * string may write any character as `\uXXXX` (in either hex case), `/` as `\/`, `"` and `\` as
 * `\"` and `\\`, so `"\u0073k-abc"` parses to `sk-abc` and a search for the literal key misses
 * it. Each secret is matched with every character literal or escaped, in any mix. The text is
 * never parsed and re-serialised: only the matched spellings change, so whatever else it holds
 * (big integers, key order, spacing) goes as it came. A text without a backslash can only hold a
 * secret literally, which a plain search finds: the patterns run only when one of them is there.
 */
export class SecretScrubber {
  private readonly literals: readonly string[];
  /** Encoded once: a string needle is encoded again on every Buffer search. */
  private readonly needles: readonly Buffer[];
  private readonly spellings: readonly RegExp[];

  constructor(secrets: readonly string[]) {
    this.literals = [...new Set(secrets.filter((secret) => secret !== ''))];
    this.needles = this.literals.map((secret) => Buffer.from(secret));
    this.spellings = this.literals.map((secret) => new RegExp(spellingPattern(secret), 'g'));
  }

  /** Cheap (byte searches only); false means these bytes hold no secret in any spelling. */
  mayHold(bytes: Buffer): boolean {
    if (this.needles.length === 0) return false;
    return bytes.includes(BACKSLASH) || this.needles.some((needle) => bytes.includes(needle));
  }

  /** The text with every spelling of every secret replaced by `[redacted]`. */
  scrub(text: string): string {
    if (this.literals.length === 0) return text;
    if (!text.includes('\\') && !this.literals.some((secret) => text.includes(secret))) return text;
    const spans: Array<[number, number]> = [];
    for (const pattern of this.spellings) {
      for (const match of text.matchAll(pattern)) {
        spans.push([escapeStart(text, match.index), match.index + match[0].length]);
      }
    }
    if (spans.length === 0) return text;
    // Secrets may overlap (a key inside a header value): the union of the matches goes.
    spans.sort((a, b) => a[0] - b[0]);
    let out = '';
    let at = 0;
    for (const [start, end] of spans) {
      if (start >= at) {
        out += text.slice(at, start) + REDACTED;
        at = end;
      } else if (end > at) at = end;
    }
    return out + text.slice(at);
  }

  /** The same for bytes relayed whole: these very bytes (not even re-encoded) when nothing matched. */
  scrubBytes(bytes: Buffer): Buffer {
    if (!this.mayHold(bytes)) return bytes;
    const text = bytes.toString('utf8');
    const scrubbed = this.scrub(text);
    return scrubbed === text ? bytes : Buffer.from(scrubbed);
  }
}

/** A regular expression source matching the secret with each character literal or escaped. */
function spellingPattern(secret: string): string {
  let pattern = '';
  // By code point: a character outside the BMP is escaped as its two surrogates, together.
  for (const char of secret) {
    const forms: string[] = [];
    const short = SHORT_ESCAPES[char];
    if (short !== undefined) forms.push(escapeRegExp(short));
    let unicode = '';
    for (let i = 0; i < char.length; i++) unicode += `\\\\u${hexPattern(char.charCodeAt(i))}`;
    forms.push(unicode, escapeRegExp(char));
    pattern += `(?:${forms.join('|')})`;
  }
  return pattern;
}

/** Four hex digits of a UTF-16 code unit, letters in either case. */
function hexPattern(unit: number): string {
  let pattern = '';
  for (const digit of unit.toString(16).padStart(4, '0')) {
    pattern += /[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit;
  }
  return pattern;
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/**
 * Where a match starting at `index` must start for the replacement to keep JSON whole: a match
 * whose first character is the tail of an escape (`\` + `nk-...` for the secret `nk-...`, or
 * the hex digits of `\u0a1b...` for a key `0a1b...`) takes the escape's start too. Left alone,
 * that start would escape the `[` of `[redacted]`, and the JSON would no longer parse.
 */
function escapeStart(text: string, index: number): number {
  if (escapedAt(text, index)) return index - 1;
  // `\uHHHH` with the match starting on one of its hex digits: n digits of it before the match.
  for (let n = 0; n <= 3 && index - 2 - n >= 0; n++) {
    if (n > 0 && !HEX_DIGIT.test(text.charAt(index - n))) break;
    const start = index - 2 - n;
    if (text.startsWith('\\u', start) && !escapedAt(text, start)) return start;
  }
  return index;
}

/** True when an odd run of backslashes ends right before `index`: its character is escaped. */
function escapedAt(text: string, index: number): boolean {
  let run = 0;
  while (index - run - 1 >= 0 && text.charCodeAt(index - run - 1) === BACKSLASH) run++;
  return run % 2 === 1;
}
