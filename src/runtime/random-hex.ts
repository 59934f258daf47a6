import { randomFillSync } from 'node:crypto';

/**
 * Random ids for requests, reservations and usage batches, as hex, cut from a pool of random
 * bytes refilled 4 KB at a time. Why not `randomUUID`: it pools its entropy too but builds each
 * id by concatenating two hex digits per byte (~2k instructions an id); here an id is one slice
 * of the pool encoded in one call. Random, not a counter, so an id tells a client nothing about
 * how many requests others sent.
 */

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

/** `bytes` random bytes (at most 64) as 2 * `bytes` lowercase hex digits. */
export function randomHex(bytes: number): string {
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString('hex', used, used + bytes);
  used += bytes;
  return hex;
}
