/**
 * One Redis command in RESP (an array of bulk strings), written straight into one Buffer.
 *
 * Why not ioredis's own `Command.toWritable`: it measures each argument's UTF-8 length
 * (`Buffer.byteLength`, a walk over the string, flattening it first when it was built by
 * concatenation) and concatenates the command's text into one more string, which the socket then
 * flattens and encodes again when it writes. Here each argument is encoded once, into its place:
 * ~1.3 % of a request's instructions on the Redis path (BENCHMARKS.md), most of what is left being
 * the flattening of concatenated arguments, which any encoder has to do.
 */

const CR = 0x0d;
const LF = 0x0a;
const ARRAY = 0x2a; // '*'
const BULK = 0x24; // '$'
/** Arguments up to this many UTF-16 units get room for 3 bytes each; longer ones are measured. */
const MEASURE_ABOVE = 4096;
/** Commands are carved from slabs of this size, as Node carves small Buffers from its pool. */
const SLAB_SIZE = 64 * 1024;

let slab = Buffer.allocUnsafe(SLAB_SIZE);
let slabUsed = 0;

function digits(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

/** `<marker><n>\r\n` at `at`, `width` bytes in all (n's digits plus three). */
function writeHeader(out: Buffer, at: number, marker: number, n: number, width: number): void {
  out[at] = marker;
  let rest = n;
  for (let i = at + width - 3; i > at; i--) {
    out[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  out[at + width - 2] = CR;
  out[at + width - 1] = LF;
}

/** The most bytes an argument can take, its header and trailing CRLF included. */
function boundOf(arg: unknown): number {
  if (typeof arg === 'string')
    return (arg.length > MEASURE_ABOVE ? Buffer.byteLength(arg) : arg.length * 3) + 15;
  return Buffer.isBuffer(arg) ? arg.length + 15 : Number.NaN;
}

function writeString(out: Buffer, at: number, text: string): number {
  // Most arguments are ASCII: the header is sized for as many bytes as the text has UTF-16 units,
  // and the bytes move only when wider characters made the length longer in digits.
  const guessed = digits(text.length) + 3;
  const bytes = out.write(text, at + guessed);
  const width = bytes === text.length ? guessed : digits(bytes) + 3;
  if (width !== guessed) out.copyWithin(at + width, at + guessed, at + guessed + bytes);
  writeHeader(out, at, BULK, bytes, width);
  const end = at + width + bytes;
  out[end] = CR;
  out[end + 1] = LF;
  return end + 2;
}

function writeBuffer(out: Buffer, at: number, bytes: Buffer): number {
  const width = digits(bytes.length) + 3;
  writeHeader(out, at, BULK, bytes.length, width);
  const end = at + width + bytes.copy(out, at + width);
  out[end] = CR;
  out[end + 1] = LF;
  return end + 2;
}

/**
 * `name` and `args` as RESP bytes, the same bytes ioredis's `toWritable` makes; undefined when an
 * argument is neither a string nor a Buffer (ioredis has made every other kind a string by then).
 */
export function respCommand(name: string, args: readonly unknown[]): Buffer | undefined {
  let bound = digits(args.length + 1) + 3 + boundOf(name);
  for (const arg of args) bound += boundOf(arg);
  if (Number.isNaN(bound)) return undefined;
  let out: Buffer;
  let start = 0;
  if (bound > SLAB_SIZE / 2) out = Buffer.allocUnsafe(bound);
  else {
    if (slabUsed + bound > SLAB_SIZE) {
      slab = Buffer.allocUnsafe(SLAB_SIZE);
      slabUsed = 0;
    }
    out = slab;
    start = slabUsed;
  }
  const width = digits(args.length + 1) + 3;
  writeHeader(out, start, ARRAY, args.length + 1, width);
  let at = writeString(out, start + width, name);
  for (const arg of args)
    at = typeof arg === 'string' ? writeString(out, at, arg) : writeBuffer(out, at, arg as Buffer);
  if (out === slab) slabUsed = at;
  return out.subarray(start, at);
}
