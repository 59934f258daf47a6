import { describe, expect, it } from 'vitest';
import { randomHex } from '../src/runtime/random-hex.js';

describe('randomHex', () => {
  it('gives the asked number of bytes as lowercase hex', () => {
    for (const bytes of [1, 12, 16, 64])
      expect(randomHex(bytes)).toMatch(new RegExp(`^[0-9a-f]{${bytes * 2}}$`));
  });

  it('never repeats an id across many refills of its pool', () => {
    // 4 KB a pool: 20,000 ids of 16 bytes span ~78 refills, and one refill that reused the
    // same bytes (or a slice handed out twice) would repeat every id after it.
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(randomHex(16));
    expect(seen.size).toBe(20_000);
  });

  it('ids cut across a refill are whole', () => {
    // 4096 is not a multiple of 12: some id would straddle the pool's end if cut from it.
    for (let i = 0; i < 1_000; i++) expect(randomHex(12)).toHaveLength(24);
  });
});
