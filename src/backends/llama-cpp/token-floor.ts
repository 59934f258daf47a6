import type { LlamaModel, LlamaText, Token } from 'node-llama-cpp';
import type { NodeLlamaCpp } from './load-node-llama-cpp.js';

/** The GGUF token type (`tokenizer.ggml.token_type`) matched as a whole even without special tokens. */
const USER_DEFINED = 4;

/** Text units other than the ASCII whitespace llama.cpp's `isspace` strips next to some tokens. */
function unstrippedLength(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x20 && (code < 0x09 || code > 0x0d)) length++;
  }
  return length;
}

/**
 * The fewest tokens a text can become, known without tokenizing it: tokenizing is synchronous
 * (about 1 s per 2 MB), so a prompt far too long for the context must be refused before.
 *
 * Why it holds, for SentencePiece (`spm`) and byte-level BPE vocabularies: every unit of the text
 * (UTF-16 code unit) ends up in some token, and no token takes in more units than its own entry
 * in the vocabulary is long (SentencePiece writes a space as the one unit `▁`, a byte token
 * `<0xNN>` takes one byte; byte-level BPE writes each byte as one character, and a UTF-16 unit is
 * at least one UTF-8 byte). So a text of n units is at least n / L tokens, L the longest entry.
 * Special tokens are entries too; the template's added text, BOS and EOS only add tokens. Tokens
 * that strip the whitespace beside them (`lstrip`/`rstrip`) would take in more: where the
 * tokenizer may match one, whitespace is not counted.
 *
 * Other vocabularies normalise text before it is split (WordPiece drops whitespace and makes an
 * unknown word one token; Unigram collapses spaces and merges unknown characters): no floor.
 */
export class TokenFloor {
  private constructor(
    private readonly library: NodeLlamaCpp,
    /** The longest vocabulary entry, in UTF-16 units. */
    private readonly longest: number,
    /** A user-defined token strips whitespace: it is matched even in text without special tokens. */
    private readonly plainTextStrips: boolean,
  ) {}

  static of(library: NodeLlamaCpp, model: LlamaModel): TokenFloor | undefined {
    const vocabulary = String(model.vocabularyType);
    if (vocabulary !== 'spm' && vocabulary !== 'bpe') return undefined;
    const { tokens, token_type: types } = (
      model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown; token_type?: unknown } } }
    ).tokenizer?.ggml ?? { tokens: undefined, token_type: undefined };
    if (!Array.isArray(tokens) || tokens.length === 0) return undefined;
    let longest = 1;
    for (const token of tokens) if (typeof token === 'string') longest = Math.max(longest, token.length);
    const plainTextStrips =
      !Array.isArray(types) ||
      types.some((type, id) => {
        if (type !== USER_DEFINED) return false;
        const attributes = model.getTokenAttributes(id as Token);
        return attributes.lstrip || attributes.rstrip;
      });
    return new TokenFloor(library, longest, plainTextStrips);
  }

  /** Client text, tokenized without special tokens. */
  ofText(text: string): number {
    return Math.ceil((this.plainTextStrips ? unstrippedLength(text) : text.length) / this.longest);
  }

  /** A prompt as the chat template rendered it: client text, and its own text with special tokens. */
  ofPrompt(text: LlamaText): number {
    let units = 0;
    for (const value of text.values) {
      if (typeof value === 'string') units += this.plainTextStrips ? unstrippedLength(value) : value.length;
      // Matched with special tokens: a control token may strip too. It is the template's own text, short.
      else if (value instanceof this.library.SpecialTokensText) units += unstrippedLength(value.value);
      // A builtin special token (BOS, EOS) is one token or none: not counted.
    }
    return Math.ceil(units / this.longest);
  }
}
