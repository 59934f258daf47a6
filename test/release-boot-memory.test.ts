import { getHeapSpaceStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { releaseBootMemory } from '../src/runtime/release-boot-memory.js';

/** Bytes of memory the young generation holds from the system right now. */
function youngGenerationBytes(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  if (!space) throw new Error('no new_space in this V8');
  return space.physical_space_size;
}

describe('releaseBootMemory', () => {
  it('gives back the young generation that a burst of surviving allocations grew', async () => {
    // What booting does: many objects that live through a few collections grow the semi-spaces.
    let survivors: Array<{ i: number; s: string }> = [];
    for (let i = 0; i < 2_000_000; i++) {
      survivors.push({ i, s: `item ${i}` });
      if (survivors.length > 200_000) survivors = survivors.slice(100_000);
    }
    const grown = youngGenerationBytes();
    expect(survivors.length).toBeGreaterThan(0);
    survivors = [];
    expect(grown).toBeGreaterThan(4 * 1024 * 1024);

    await releaseBootMemory();

    expect(youngGenerationBytes()).toBeLessThan(grown / 4);
  });

  it('can run again: each call connects and disconnects its own session', async () => {
    await expect(releaseBootMemory()).resolves.toBeUndefined();
    await expect(releaseBootMemory()).resolves.toBeUndefined();
  });
});
