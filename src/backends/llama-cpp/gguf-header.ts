import { open } from 'node:fs/promises';

/** More tensors or metadata keys than any real model has: the header is garbage. */
const MAX_COUNT = 1_000_000;

/**
 * Checks a file's GGUF header before node-llama-cpp reads it: its parser trusts the counts in
 * the header, and on a file that only starts like a GGUF it read for ever instead of failing.
 */
export async function checkGgufHeader(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(24);
    const { bytesRead } = await file.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.toString('latin1', 0, 4) !== 'GGUF')
      throw new Error('not a GGUF file');
    const version = header.readUInt32LE(4);
    if (version !== 2 && version !== 3) throw new Error(`unsupported GGUF version ${version}`);
    const tensors = header.readBigUInt64LE(8);
    const keys = header.readBigUInt64LE(16);
    if (tensors > BigInt(MAX_COUNT) || keys > BigInt(MAX_COUNT))
      throw new Error('corrupt GGUF header (impossible tensor or metadata counts)');
  } finally {
    await file.close();
  }
}
