/**
 * Finds where a JSON object or array ends in text read one character at a time: at the bracket
 * that balances the first one, brackets inside strings not counted. The streamed arguments of a
 * tool call end there, before anything the syntax puts after them.
 */
export class JsonValueEnd {
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** True while a value has begun and not ended. */
  get open(): boolean {
    return this.depth !== 0;
  }

  /** Reads one character; true when it closed the value. */
  push(char: string): boolean {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (char === '\\') this.escaped = true;
      else if (char === '"') this.inString = false;
    } else if (char === '"') this.inString = true;
    else if (char === '{' || char === '[') this.depth++;
    else if (char === '}' || char === ']') {
      this.depth--;
      return this.depth === 0;
    }
    return false;
  }
}
