import type { Llama, LlamaGrammar } from 'node-llama-cpp';
import { withFiniteNumbers } from './finite-number-grammar.js';
import type { LoadedModel } from './loaded-model.js';
import { ToolCallSteer } from './tool-call-steer.js';
import { type CallSyntax, callSyntaxOf } from './tool-call-syntax.js';
import type { ToolRequest } from './tool-request.js';

/** What an `auto` answer needs: the template's call syntax, the tools, and a steer per answer. */
export interface AutoToolCalls {
  syntax: CallSyntax;
  names: string[];
  parallel: boolean;
  steer: ToolCallSteer;
}

/**
 * Prepares call detection for a chat request under `tool_choice: auto`, or undefined when the
 * model's chat wrapper has no call prefix to watch for. A tool whose schema node-llama-cpp cannot
 * turn into a grammar still takes part: its params are then written freely and parsed (`auto`
 * accepted such tools before it read calls, and still does).
 */
export async function autoToolCalls(
  model: LoadedModel,
  auto: NonNullable<ToolRequest['auto']>,
): Promise<AutoToolCalls | undefined> {
  const syntax = callSyntaxOf(model.chatWrapper);
  if (syntax.starts.length === 0) return undefined;
  const llama = model.model.llama;
  const grammars = new Map<string, LlamaGrammar | undefined>();
  for (const tool of auto.tools)
    grammars.set(
      tool.name,
      await llama
        .createGrammarForJsonSchema(tool.parameters as Parameters<Llama['createGrammarForJsonSchema']>[0])
        .then((grammar) => withFiniteNumbers(llama, grammar))
        .catch(() => undefined),
    );
  const names = [...grammars.keys()];
  return {
    syntax,
    names,
    parallel: auto.parallel,
    steer: new ToolCallSteer(
      syntax,
      grammars,
      auto.parallel,
      {
        fromGbnf: (gbnf) => llama.createGrammar({ grammar: gbnf }),
        state: (grammar) => model.grammarState(grammar),
      },
      specialTokensIn(model, syntax),
    ),
  };
}

/**
 * Whether a call prefix is made of control tokens that text without special tokens would drop
 * (Mistral's `[TOOL_CALLS]`, for one): only then is the text written with them, so that other
 * templates' answers keep their control tokens out of the content, as without tools.
 */
function specialTokensIn(model: LoadedModel, syntax: CallSyntax): boolean {
  return syntax.starts.some((start) => {
    const plain = model.model.detokenize(model.model.tokenize(start, true), false);
    return !plain.includes(start.trim());
  });
}
