/**
 * How many terminal columns a string takes, for aligning tables: counting code points puts every
 * row with a CJK name or an emoji out of line, and a name with a combining accent one column short.
 * The rules are wcwidth's: East Asian Wide and Fullwidth characters take two columns, combining
 * marks and format characters none, everything else one; counted per grapheme (what a terminal
 * draws as one glyph), so an emoji sequence joined by ZWJ or a flag is one glyph.
 */

/**
 * The East Asian Wide (W) and Fullwidth (F) blocks of Unicode's EastAsianWidth.txt, merged into
 * ranges; emoji are left to `\p{Emoji_Presentation}` below.
 */
const WIDE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], // Hangul Jamo initial consonants
  [0x2329, 0x232a], // angle brackets
  [0x2e80, 0x303e], // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Kanbun, CJK strokes, enclosed
  [0x3400, 0x4dbf], // CJK Unified Ideographs Extension A
  [0x4e00, 0x9fff], // CJK Unified Ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo Extended-A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth ASCII
  [0xffe0, 0xffe6], // fullwidth signs
  [0x16fe0, 0x16fe4], // ideographic symbols
  [0x17000, 0x18cff], // Tangut, Khitan
  [0x1aff0, 0x1b2ff], // Kana supplement and extensions, Nushu
  [0x1f200, 0x1f2ff], // enclosed ideographic supplement
  [0x20000, 0x2fffd], // CJK Unified Ideographs Extensions B-F, compatibility supplement
  [0x30000, 0x3fffd], // CJK Unified Ideographs Extensions G and later
];

/** Drawn on top of the previous character, or not at all. */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\u1160-\u11ff]$/u;
/** Emoji shown as emoji by default (not as text): two columns, as in every current terminal. */
const EMOJI = /^\p{Emoji_Presentation}$/u;
/** Variation selector 16: "show the preceding character as an emoji", two columns wide. */
const EMOJI_STYLE = '\ufe0f';

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function isWide(codePoint: number): boolean {
  for (const [first, last] of WIDE_RANGES) {
    if (codePoint < first) return false;
    if (codePoint <= last) return true;
  }
  return false;
}

function codePointWidth(char: string): number {
  const codePoint = char.codePointAt(0) ?? 0;
  if (codePoint < 0x7f) return codePoint < 0x20 ? 0 : 1;
  if (ZERO_WIDTH.test(char)) return 0;
  return isWide(codePoint) || EMOJI.test(char) ? 2 : 1;
}

function graphemeWidth(grapheme: string): number {
  let width = 0;
  for (const char of grapheme) {
    // A cluster is one glyph: its first character that takes space sets its width.
    width = codePointWidth(char);
    if (width > 0) break;
  }
  return width > 0 && grapheme.includes(EMOJI_STYLE) ? 2 : width;
}

export function displayWidth(text: string): number {
  // Plain ASCII, nearly every cell: no segmenting needed.
  if (/^[ -~]*$/.test(text)) return text.length;
  let width = 0;
  for (const { segment } of segmenter.segment(text)) width += graphemeWidth(segment);
  return width;
}
