import type { Llama, LlamaGrammar } from 'node-llama-cpp';

/**
 * node-llama-cpp's JSON grammars let a number carry an exponent of up to 16 digits, integers
 * included: a sampled `"days": 4658192e1981946581` fits them, and every JSON reader a client uses
 * turns it into Infinity (which our Messages translation would then write as `null`). A model
 * asked for an integer should write digits a reader keeps exactly, and a number should stay finite.
 * So each number rule of the pinned library's grammars is swapped for a bounded one: integers are
 * up to 15 digits (below 2^53), without exponent; other numbers keep their fraction and get an
 * exponent of at most two digits. A rule text we do not know is left as the library wrote it.
 */
const BOUNDED_RULES: ReadonlyMap<string, string> = new Map([
  // JSON schema grammars (getGbnfGrammarForGbnfJsonSchema): `type: integer`.
  [
    'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?',
    'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,14})',
  ],
  // JSON schema grammars: `type: number`.
  [
    'fractional-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?',
    'fractional-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
  ],
  // The library's json.gbnf (`response_format: json_object`).
  [
    'number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws',
    'number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})? ws',
  ],
]);

/** The grammar text with every number rule we know bounded (see above). */
export function boundNumberRules(gbnf: string): string {
  return gbnf
    .split('\n')
    .map((line) => BOUNDED_RULES.get(line.trimEnd()) ?? line)
    .join('\n');
}

/** The grammar, rebuilt with bounded number rules when it has any; else the same grammar. */
export async function withFiniteNumbers(llama: Llama, grammar: LlamaGrammar): Promise<LlamaGrammar> {
  const bounded = boundNumberRules(grammar.grammar);
  if (bounded === grammar.grammar) return grammar;
  return llama.createGrammar({
    grammar: bounded,
    rootRuleName: grammar.rootRuleName,
    stopGenerationTriggers: grammar.stopGenerationTriggers,
    trimWhitespaceSuffix: grammar.trimWhitespaceSuffix,
  });
}
