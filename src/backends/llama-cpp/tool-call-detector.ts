import { JsonValueEnd } from './json-value-end.js';
import type { CallSyntax } from './tool-call-syntax.js';

/** What a piece of generated text turned out to be. */
export type DetectorEvent =
  | { type: 'content'; text: string }
  | { type: 'call'; index: number; name: string }
  | { type: 'arguments'; index: number; fragment: string };

export interface DetectedCall {
  name: string;
  /** The params JSON as written (all of it once `complete`). */
  arguments: string;
  complete: boolean;
}

/**
 * `text`: content, watching for a call prefix; `name`: after the prefix, until a tool's name and
 * params prefix are whole; `arguments`: the params JSON; `after`: between calls (the suffix, then
 * another call or the end); `done`: the calls are over, the rest is ignored; `fallback`: the call
 * could not be read, so all the text is content.
 */
export type DetectorPhase = 'text' | 'name' | 'arguments' | 'after' | 'done' | 'fallback';

type LooseMatch = { kind: 'full'; rest: string } | { kind: 'partial'; consumed: number } | { kind: 'none' };

const isSpace = (char: string | undefined) => char !== undefined && /\s/.test(char);

/**
 * Matches `buffer` against the start of `target`, whitespace aside (a model may space call
 * syntax its own way): `full` with what follows, `partial` with how much of the target is
 * matched, or `none`.
 */
export function matchLoose(buffer: string, target: string): LooseMatch {
  let i = 0;
  let j = 0;
  for (;;) {
    while (isSpace(target[j])) j++;
    if (j >= target.length) return { kind: 'full', rest: buffer.slice(i) };
    while (isSpace(buffer[i])) i++;
    if (i >= buffer.length) return { kind: 'partial', consumed: j };
    if (buffer[i] !== target[j]) return { kind: 'none' };
    i++;
    j++;
  }
}

/**
 * Finds function calls in a model's streamed text, written in its chat wrapper's syntax (see
 * CallSyntax), as node-llama-cpp's LlamaChat does: text before the call prefix is content (text
 * that may still become the prefix is held back, like a stop sequence); after the prefix come a
 * tool's name, the params prefix, the params JSON and the suffix, then (parallel calls) maybe
 * another call. A name that is no tool's, or params that are not a JSON object, make the whole
 * text content again, unless a call was already whole: the answer then ends with that call.
 */
export class ToolCallDetector {
  phase: DetectorPhase = 'text';
  readonly calls: DetectedCall[] = [];
  private raw = '';
  private content = '';
  private held = '';
  private invalid = false;
  private json = new JsonValueEnd();

  constructor(
    private readonly syntax: CallSyntax,
    private readonly names: readonly string[],
    /** More than one call may be read (the request allows it and the syntax has a way). */
    private readonly parallel: boolean,
  ) {}

  /** The text after the call prefix while the name is being written. */
  get nameText(): string {
    return this.phase === 'name' ? this.held : '';
  }

  /** The targets a name can still become: each tool's name and params prefix. */
  nameTargets(): string[] {
    return this.names.map((name) => name + this.syntax.paramsPrefix(name));
  }

  push(text: string): DetectorEvent[] {
    const events: DetectorEvent[] = [];
    this.raw += text;
    let rest = text;
    while (rest !== '') rest = this.step(rest, events);
    return events;
  }

  /** Generation ended: what was held back is told now. */
  end(): DetectorEvent[] {
    const events: DetectorEvent[] = [];
    if (this.phase === 'text') {
      this.emitContent(this.held, events);
      this.held = '';
    } else if (this.phase === 'name') this.reject(events);
    else if (this.phase === 'after') this.phase = 'done';
    return events;
  }

  /** The answer: content (null when calls came without text before them) and the calls. */
  result(): { content: string | null; calls: DetectedCall[] } {
    if (this.invalid || this.calls.length === 0)
      return { content: this.invalid ? this.raw : this.content, calls: [] };
    return { content: this.content === '' ? null : this.content, calls: this.calls };
  }

  private step(text: string, events: DetectorEvent[]): string {
    switch (this.phase) {
      case 'text':
        return this.inText(text, events);
      case 'name':
        return this.inName(text, events);
      case 'arguments':
        return this.inArguments(text, events);
      case 'after':
        return this.inAfter(text);
      case 'fallback':
        this.emitContent(text, events);
        return '';
      case 'done':
        return '';
    }
  }

  private inText(text: string, events: DetectorEvent[]): string {
    const buffer = this.held + text;
    let at = -1;
    let start = '';
    for (const candidate of this.syntax.starts) {
      const index = buffer.indexOf(candidate);
      if (index >= 0 && (at < 0 || index < at || (index === at && candidate.length > start.length))) {
        at = index;
        start = candidate;
      }
    }
    if (at >= 0) {
      this.emitContent(buffer.slice(0, at), events);
      this.held = '';
      this.phase = 'name';
      return buffer.slice(at + start.length);
    }
    const keep = this.partialStart(buffer);
    this.emitContent(buffer.slice(0, buffer.length - keep), events);
    this.held = buffer.slice(buffer.length - keep);
    return '';
  }

  /** The longest end of `buffer` that begins a call prefix. */
  private partialStart(buffer: string): number {
    let longest = 0;
    for (const start of this.syntax.starts)
      for (let length = Math.min(start.length - 1, buffer.length); length > longest; length--)
        if (buffer.endsWith(start.slice(0, length))) {
          longest = length;
          break;
        }
    return longest;
  }

  private inName(text: string, events: DetectorEvent[]): string {
    const buffer = this.held + text;
    let waiting = false;
    for (const name of this.names) {
      const match = matchLoose(buffer, name + this.syntax.paramsPrefix(name));
      if (match.kind === 'full') {
        this.held = '';
        this.calls.push({ name, arguments: '', complete: false });
        events.push({ type: 'call', index: this.calls.length - 1, name });
        this.phase = 'arguments';
        this.json = new JsonValueEnd();
        return match.rest;
      }
      if (match.kind === 'partial') waiting = true;
    }
    if (waiting) {
      this.held = buffer;
      return '';
    }
    this.reject(events);
    return '';
  }

  private inArguments(text: string, events: DetectorEvent[]): string {
    const call = this.calls.at(-1) as DetectedCall;
    let taken = '';
    let index = 0;
    for (const char of text) {
      index += char.length;
      if (call.arguments === '' && taken === '' && isSpace(char)) continue;
      if (call.arguments === '' && taken === '' && char !== '{') {
        this.reject(events);
        return '';
      }
      taken += char;
      if (this.json.push(char)) break;
    }
    call.arguments += taken;
    if (taken !== '') events.push({ type: 'arguments', index: this.calls.length - 1, fragment: taken });
    if (this.json.open || call.arguments === '') return '';
    if (!isJsonObject(call.arguments)) {
      this.reject(events);
      return '';
    }
    call.complete = true;
    this.phase = this.parallel && this.syntax.parallel ? 'after' : 'done';
    this.held = '';
    return text.slice(index);
  }

  private inAfter(text: string): string {
    const buffer = this.held + text;
    const suffix = this.syntax.suffix((this.calls.at(-1) as DetectedCall).name);
    let waiting = false;
    for (const prefix of this.syntax.prefixes) {
      const match = matchLoose(buffer, suffix + this.syntax.betweenCalls + prefix);
      if (match.kind === 'full') {
        this.held = '';
        this.phase = 'name';
        return match.rest;
      }
      if (match.kind === 'partial') waiting = true;
    }
    const end = matchLoose(buffer, suffix + this.syntax.sectionSuffix);
    if (waiting || end.kind === 'partial') this.held = buffer;
    else this.phase = 'done';
    return '';
  }

  /** A call that cannot be read: the text is content, unless a whole call came before it. */
  private reject(events: DetectorEvent[]): void {
    this.held = '';
    if (this.calls.some((call) => call.complete)) {
      const unfinished = this.calls.findIndex((call) => !call.complete);
      if (unfinished >= 0) this.calls.splice(unfinished);
      this.phase = 'done';
      return;
    }
    this.invalid = true;
    this.phase = 'fallback';
    this.emitContent(this.raw.slice(this.content.length), events);
  }

  private emitContent(text: string, events: DetectorEvent[]): void {
    if (text === '') return;
    this.content += text;
    events.push({ type: 'content', text });
  }
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  } catch {
    return false;
  }
}
