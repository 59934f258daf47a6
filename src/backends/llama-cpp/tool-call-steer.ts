import type { LlamaGrammar, LlamaGrammarEvaluationState } from 'node-llama-cpp';
import type { GenerationSteer } from './generate-tokens.js';
import { matchLoose, ToolCallDetector } from './tool-call-detector.js';
import type { CallSyntax } from './tool-call-syntax.js';

/** A GBNF string literal. */
function literal(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += char;
  }
  return `${out}"`;
}

/**
 * Steers a generation with tools under `tool_choice: auto` as LlamaChat does: free text until
 * the model writes its call prefix, then a grammar holds it to one of the tools' names and the
 * params prefix, then to that tool's params schema; the generation ends once the call (or, with
 * parallel calls, the last call) is whole.
 */
export class ToolCallSteer implements GenerationSteer {
  private readonly detector: ToolCallDetector;
  private state: LlamaGrammarEvaluationState | undefined;
  private steered: string | undefined;

  constructor(
    syntax: CallSyntax,
    /** Each tool's params grammar; none: its params are written freely and parsed. */
    private readonly tools: ReadonlyMap<string, LlamaGrammar | undefined>,
    parallel: boolean,
    private readonly grammars: {
      fromGbnf: (gbnf: string) => Promise<LlamaGrammar>;
      state: (grammar: LlamaGrammar) => LlamaGrammarEvaluationState;
    },
    readonly specialTokens: boolean,
  ) {
    this.detector = new ToolCallDetector(syntax, [...tools.keys()], parallel);
  }

  grammar(): LlamaGrammarEvaluationState | undefined {
    return this.state;
  }

  async push(text: string): Promise<boolean> {
    this.detector.push(text);
    const { phase, calls } = this.detector;
    // What is being constrained now: a name (after which prefix), or the params of call N.
    const step =
      phase === 'name' ? `name:${calls.length}` : phase === 'arguments' ? `args:${calls.length}` : phase;
    if (step !== this.steered) {
      this.steered = step;
      this.state = undefined;
      if (phase === 'name') this.state = await this.nameGrammar(this.detector.nameText);
      else if (phase === 'arguments') {
        const call = calls.at(-1);
        const grammar = call ? this.tools.get(call.name) : undefined;
        // Params already begun within the token that ended the name cannot be fed to a fresh
        // grammar state: the rest is then written freely and parsed.
        if (grammar && call?.arguments === '') this.state = this.grammars.state(grammar);
      }
    }
    return phase === 'done';
  }

  /** `[ ]? ("name1<params prefix>" | ...)`, less what the model already wrote after the prefix. */
  private async nameGrammar(written: string): Promise<LlamaGrammarEvaluationState | undefined> {
    const rests: string[] = [];
    for (const target of this.detector.nameTargets()) {
      const match = matchLoose(written, target);
      if (match.kind === 'partial') rests.push(target.slice(match.consumed));
    }
    const options = rests.filter((rest) => rest !== '');
    if (options.length === 0) return undefined;
    const space = written.trim() === '' ? '[ ]? ' : '';
    try {
      const grammar = await this.grammars.fromGbnf(`root ::= ${space}(${options.map(literal).join(' | ')})`);
      return this.grammars.state(grammar);
    } catch {
      // A syntax llama.cpp's grammar parser refuses: the name is written freely and checked.
      return undefined;
    }
  }
}
