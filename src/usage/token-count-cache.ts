/**
 * Token counts of texts a team has sent before, so a prompt estimate counts each text once.
 *
 * Why: clients resend the whole conversation every turn (the chat APIs are stateless), and most
 * teams send the same system prompt and tool schemas with every request. Without this, turn 20
 * counted turns 1-19 again, and past the per-request allowance of exact counting
 * (token-counter.ts) a long conversation was only estimated from samples. With it, a turn counts
 * only its new text, so a conversation stays exactly counted while each turn adds less than the
 * allowance, and catches up when it was missed (token-counter.ts counts whole texts within half
 * the allowance even when a request has more).
 *
 * Entries are per team: one team's requests never learn, even by timing, whether another team
 * sent a text. The size is shared: a busy team can push another's entries out (their estimates
 * are then sampled again, as before there was a memory); a size per team would grow with the
 * number of teams. The texts are held in memory only, at most `maxChars` UTF-16 code units in all,
 * each entry counted with its overhead, in two generations of half that: a hit moves a text
 * into the current one, and when it is full the older one is dropped (least recently used
 * first, at O(1) a lookup).
 */
export interface CountedText {
  tokens: number;
  /** UTF-8 bytes of the text (for the counter's tokens-per-byte sample). */
  bytes: number;
}

/** 2 M code units: ~4 MB of strings at most, thousands of system prompts and messages. */
export const DEFAULT_CACHE_CHARS = 2_000_000;

/**
 * What an entry costs beyond its text, in code units (a Map entry, the count object, the
 * string's header: ~64 bytes): many tiny texts are bounded by it, not by their length.
 */
const ENTRY_CHARS = 32;

/** Texts of one scope (team) and their counts. */
type Generation = Map<string, Map<string, CountedText>>;

export class TokenCountCache {
  // A map per scope, not one keyed by scope + text: a joined key is a new string whose hash
  // V8 computes after copying it, on every lookup; the text's own hash is computed in place.
  private current: Generation = new Map();
  private previous: Generation = new Map();
  private currentChars = 0;
  private readonly generationChars: number;

  constructor(maxChars = DEFAULT_CACHE_CHARS) {
    this.generationChars = Math.max(1, Math.floor(maxChars / 2));
  }

  get(scope: string, text: string): CountedText | undefined {
    const found = this.current.get(scope)?.get(text);
    if (found) return found;
    const texts = this.previous.get(scope);
    const old = texts?.get(text);
    if (old) {
      texts?.delete(text);
      this.put(scope, text, old);
    }
    return old;
  }

  set(scope: string, text: string, counted: CountedText): void {
    if (text.length > this.generationChars || this.current.get(scope)?.has(text)) return;
    this.put(scope, text, counted);
  }

  private put(scope: string, text: string, counted: CountedText): void {
    const size = text.length + ENTRY_CHARS;
    if (this.currentChars + size > this.generationChars) {
      this.previous = this.current;
      this.current = new Map();
      this.currentChars = 0;
    }
    let texts = this.current.get(scope);
    if (!texts) {
      texts = new Map();
      this.current.set(scope, texts);
    }
    texts.set(text, counted);
    this.currentChars += size;
  }
}
