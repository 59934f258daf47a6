import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// '.ts', not '.js': bench/llama-cpp-section.mjs imports this file with Node's own type stripping,
// which loads the path as written (test/bench-imports.test.ts keeps that working).
import { seededRandom as random } from './seeded-random.ts';

/**
 * A tiny llama-architecture GGUF (v3, f32) written by the test suite itself: no download, ever.
 * Its weights are seeded noise, so its text is noise; what the tests rely on is built in:
 * every token embedding carries a large constant in dimension 0 (RMS norm keeps it dominant
 * through the layers), and the output rows of EOS, control and byte tokens weigh that dimension
 * strongly negative, so generation only ever picks normal tokens. "Exactly N tokens" is then
 * deterministic: nothing ends an answer early and no partial UTF-8 byte is ever emitted.
 */

export const TINY_EMBEDDING_LENGTH = 64;
const BLOCKS = 2;
const HEADS = 4;
const FEED_FORWARD = 128;
const CONTEXT_LENGTH = 16_384;
const ALIGNMENT = 32;

/** llama.cpp token types. */
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const BYTE = 6;

const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const BIGRAMS =
  'th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur'.split(
    ' ',
  );
const WORDS =
  'hello world the a is of and to in it you say user assistant system tiny model noise gate token stream quick brown fox jumps over lazy dog'.split(
    ' ',
  );

interface Vocab {
  tokens: string[];
  types: number[];
  scores: number[];
}

function vocabulary(extra?: string): Vocab {
  const tokens: string[] = [];
  const types: number[] = [];
  const add = (token: string, type: number) => {
    if (tokens.includes(token)) return;
    tokens.push(token);
    types.push(type);
  };
  add('<unk>', UNKNOWN);
  add('<s>', CONTROL);
  add('</s>', CONTROL);
  add('<|im_start|>', CONTROL);
  add('<|im_end|>', CONTROL);
  for (let byte = 0; byte < 256; byte++) add(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`, BYTE);
  add('▁', NORMAL);
  // '<', '>' and '|' are left out so the model can never spell a chat-template marker.
  for (let code = 0x21; code <= 0x7e; code++) {
    const char = String.fromCharCode(code);
    if (!'<>|'.includes(char)) add(char, NORMAL);
  }
  for (let code = 0x61; code <= 0x7a; code++) add(`▁${String.fromCharCode(code)}`, NORMAL);
  for (let code = 0x41; code <= 0x5a; code++) add(`▁${String.fromCharCode(code)}`, NORMAL);
  for (const bigram of BIGRAMS) add(bigram, NORMAL);
  for (const word of WORDS) {
    add(word, NORMAL);
    add(`▁${word}`, NORMAL);
  }
  if (extra !== undefined) add(extra, NORMAL);
  // SentencePiece merges prefer higher scores: longer pieces first, then earlier ones.
  const scores = tokens.map((token, id) => (types[id] === NORMAL ? [...token].length - id / 10_000 : 0));
  return { tokens, types, scores };
}

interface Tensor {
  name: string;
  /** Innermost first, as GGUF stores them. */
  dims: number[];
  data: Float32Array;
}

function noise(next: () => number, length: number, scale: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = (next() * 2 - 1) * scale;
  return values;
}

function tensors(vocab: Vocab, seed: number, favoured?: string): Tensor[] {
  const next = random(seed);
  const n = TINY_EMBEDDING_LENGTH;
  const vocabSize = vocab.tokens.length;
  const embeddings = noise(next, n * vocabSize, 1);
  for (let token = 0; token < vocabSize; token++) embeddings[token * n] = 8;
  const output = noise(next, n * vocabSize, 1);
  for (let token = 0; token < vocabSize; token++) output[token * n] = vocab.types[token] === NORMAL ? 0 : -10;
  // The favoured token outweighs every other: the model writes it wherever a grammar allows it.
  if (favoured !== undefined) output[vocab.tokens.indexOf(favoured) * n] = 10;
  const ones = (length: number) => new Float32Array(length).fill(1);
  const list: Tensor[] = [
    { name: 'token_embd.weight', dims: [n, vocabSize], data: embeddings },
    { name: 'output_norm.weight', dims: [n], data: ones(n) },
    { name: 'output.weight', dims: [n, vocabSize], data: output },
  ];
  for (let block = 0; block < BLOCKS; block++) {
    const name = (part: string) => `blk.${block}.${part}.weight`;
    // Small layer weights: the residual stream stays led by the embedding, dimension 0 included.
    list.push(
      { name: name('attn_norm'), dims: [n], data: ones(n) },
      { name: name('attn_q'), dims: [n, n], data: noise(next, n * n, 0.05) },
      { name: name('attn_k'), dims: [n, n], data: noise(next, n * n, 0.05) },
      { name: name('attn_v'), dims: [n, n], data: noise(next, n * n, 0.05) },
      { name: name('attn_output'), dims: [n, n], data: noise(next, n * n, 0.05) },
      { name: name('ffn_norm'), dims: [n], data: ones(n) },
      { name: name('ffn_gate'), dims: [n, FEED_FORWARD], data: noise(next, n * FEED_FORWARD, 0.05) },
      { name: name('ffn_up'), dims: [n, FEED_FORWARD], data: noise(next, n * FEED_FORWARD, 0.05) },
      { name: name('ffn_down'), dims: [FEED_FORWARD, n], data: noise(next, n * FEED_FORWARD, 0.05) },
    );
  }
  return list;
}

/** GGUF value types. */
const UINT32 = 4;
const INT32 = 5;
const FLOAT32 = 6;
const BOOL = 7;
const STRING = 8;
const ARRAY = 9;

type Value =
  | { type: typeof UINT32 | typeof INT32 | typeof FLOAT32; value: number }
  | { type: typeof BOOL; value: boolean }
  | { type: typeof STRING; value: string }
  | { type: typeof ARRAY; of: typeof INT32 | typeof FLOAT32 | typeof STRING; values: (number | string)[] };

class Writer {
  private readonly parts: Buffer[] = [];
  length = 0;

  private push(buffer: Buffer): void {
    this.parts.push(buffer);
    this.length += buffer.length;
  }

  u32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(value);
    this.push(buffer);
  }

  i32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeInt32LE(value);
    this.push(buffer);
  }

  u64(value: number): void {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(BigInt(value));
    this.push(buffer);
  }

  f32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeFloatLE(value);
    this.push(buffer);
  }

  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  bytes(buffer: Buffer): void {
    this.push(buffer);
  }

  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    if (pad > 0) this.push(Buffer.alloc(pad));
  }

  scalar(type: number, value: number | string | boolean): void {
    if (type === UINT32) this.u32(value as number);
    else if (type === INT32) this.i32(value as number);
    else if (type === FLOAT32) this.f32(value as number);
    else if (type === BOOL) this.push(Buffer.from([value ? 1 : 0]));
    else this.string(value as string);
  }

  value(value: Value): void {
    this.u32(value.type);
    if (value.type === ARRAY) {
      this.u32(value.of);
      this.u64(value.values.length);
      for (const item of value.values) this.scalar(value.of, item);
    } else this.scalar(value.type, value.value);
  }

  result(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface TinyGgufOptions {
  /** Different seeds give different weights (and so different text). */
  seed?: number;
  /** `tokenizer.chat_template`; a ChatML template by default. */
  chatTemplate?: string;
  /**
   * A piece added to the vocabulary that the model then always picks when it may (e.g. a tool
   * call prefix, so that the tiny model writes a call under `tool_choice: auto`).
   */
  favouredToken?: string;
}

/** The GGUF file's bytes. */
export function tinyGguf(options: TinyGgufOptions = {}): Buffer {
  const vocab = vocabulary(options.favouredToken);
  const list = tensors(vocab, options.seed ?? 1, options.favouredToken);
  const u32 = (value: number): Value => ({ type: UINT32, value });
  const metadata: Array<[string, Value]> = [
    ['general.architecture', { type: STRING, value: 'llama' }],
    ['general.name', { type: STRING, value: 'tollgate-tiny' }],
    ['general.alignment', u32(ALIGNMENT)],
    ['llama.context_length', u32(CONTEXT_LENGTH)],
    ['llama.embedding_length', u32(TINY_EMBEDDING_LENGTH)],
    ['llama.block_count', u32(BLOCKS)],
    ['llama.feed_forward_length', u32(FEED_FORWARD)],
    ['llama.attention.head_count', u32(HEADS)],
    ['llama.attention.head_count_kv', u32(HEADS)],
    ['llama.rope.dimension_count', u32(TINY_EMBEDDING_LENGTH / HEADS)],
    ['llama.attention.layer_norm_rms_epsilon', { type: FLOAT32, value: 1e-5 }],
    ['tokenizer.ggml.model', { type: STRING, value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: ARRAY, of: STRING, values: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: ARRAY, of: FLOAT32, values: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: ARRAY, of: INT32, values: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', u32(0)],
    ['tokenizer.ggml.bos_token_id', u32(1)],
    ['tokenizer.ggml.eos_token_id', u32(2)],
    ['tokenizer.ggml.add_bos_token', { type: BOOL, value: true }],
    ['tokenizer.ggml.add_eos_token', { type: BOOL, value: false }],
    ['tokenizer.chat_template', { type: STRING, value: options.chatTemplate ?? CHAT_TEMPLATE }],
  ];
  const out = new Writer();
  out.bytes(Buffer.from('GGUF', 'ascii'));
  out.u32(3);
  out.u64(list.length);
  out.u64(metadata.length);
  for (const [key, value] of metadata) {
    out.string(key);
    out.value(value);
  }
  let offset = 0;
  for (const tensor of list) {
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    for (const dim of tensor.dims) out.u64(dim);
    out.u32(0); // F32
    out.u64(offset);
    offset += Math.ceil((tensor.data.length * 4) / ALIGNMENT) * ALIGNMENT;
  }
  out.padTo(ALIGNMENT);
  for (const tensor of list) {
    out.bytes(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    out.padTo(ALIGNMENT);
  }
  return out.result();
}

/** Writes the tiny model to `<dir>/<name>.gguf` (a fresh temp folder by default); returns its path. */
export function writeTinyGguf(
  name = 'tiny',
  dir = mkdtempSync(join(tmpdir(), 'tollgate-gguf-')),
  options: TinyGgufOptions = {},
): string {
  const path = join(dir, `${name}.gguf`);
  writeFileSync(path, tinyGguf(options));
  return path;
}
