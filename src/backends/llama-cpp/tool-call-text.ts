import { JsonValueEnd } from './json-value-end.js';

/** `{"name": "<name>", "arguments": ` — the start of a forced call as its grammar writes it. */
const HEAD = /^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*/;

/**
 * Splits the generated text of a forced tool call, `{"name": ..., "arguments": {...}}`, as it
 * streams: the name once it is whole, then the arguments object piece by piece, without the
 * outer object's closing brace. The arguments end where their brackets balance (outside strings).
 */
export class ToolCallText {
  private head = '';
  name: string | undefined;
  /** The arguments' text so far (all of it once `complete`). */
  arguments = '';
  complete = false;
  private readonly json = new JsonValueEnd();

  /** Adds generated text; returns the name when it became known now, and new arguments text. */
  push(text: string): { name: string | undefined; fragment: string } {
    if (this.name === undefined) {
      this.head += text;
      const match = HEAD.exec(this.head);
      if (!match) return { name: undefined, fragment: '' };
      this.name = JSON.parse(`"${match[1]}"`) as string;
      const rest = this.head.slice(match[0].length);
      this.head = '';
      return { name: this.name, fragment: this.scan(rest) };
    }
    return { name: undefined, fragment: this.scan(text) };
  }

  private scan(text: string): string {
    let taken = '';
    for (const char of text) {
      if (this.complete) break;
      if (this.arguments === '' && taken === '' && /\s/.test(char)) continue;
      taken += char;
      if (this.json.push(char)) this.complete = true;
    }
    this.arguments += taken;
    return taken;
  }
}
