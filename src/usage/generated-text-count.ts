import { countTextTokens } from './token-counter.js';

/** Generated text kept for counting when no usage comes; the rest is counted from its length. */
const MAX_KEPT_CHARS = 256 * 1024;

/**
 * What a model generated, as it comes, for counting its tokens when the backend reports no
 * usage: kept up to a cap (many long answers at once must not hold much memory), and past it
 * counted at the density of what was kept.
 */
export class GeneratedTextCount {
  private kept = '';
  private beyond = 0;

  add(text: string): void {
    if (this.kept.length + text.length <= MAX_KEPT_CHARS) this.kept += text;
    else this.beyond += text.length;
  }

  tokens(): number {
    const counted = countTextTokens(this.kept);
    if (this.beyond === 0 || this.kept.length === 0) return counted;
    return counted + Math.ceil((this.beyond * counted) / this.kept.length);
  }
}
