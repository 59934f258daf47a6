import { describe, expect, it } from 'vitest';
import { TurnBatches } from '../src/store/turn-batches.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('TurnBatches', () => {
  it('hands over what one turn asked for per key, in order, in chunks of at most maxBatch', async () => {
    const sent: Array<[string, number[]]> = [];
    const batches = new TurnBatches<number>(2, (key, items) => sent.push([key, items]));
    for (const [key, item] of [
      ['a', 1],
      ['b', 2],
      ['a', 3],
      ['a', 4],
      ['a', 5],
    ] as const)
      batches.add(key, item);
    expect(sent).toEqual([]);
    await nextTurn();
    expect(sent).toEqual([
      ['a', [1, 3]],
      ['a', [4, 5]],
      ['b', [2]],
    ]);
  });

  it('says which keys have something waiting until it is handed over', async () => {
    const batches = new TurnBatches<number>(10, () => {});
    batches.add('a', 1);
    expect([batches.has('a'), batches.has('b')]).toEqual([true, false]);
    await nextTurn();
    expect(batches.has('a')).toBe(false);
  });

  it('starts a new batch for what is asked for after a hand-over', async () => {
    const sent: Array<[string, number[]]> = [];
    const batches = new TurnBatches<number>(10, (key, items) => sent.push([key, items]));
    batches.add('a', 1);
    await nextTurn();
    batches.add('a', 2);
    await nextTurn();
    expect(sent).toEqual([
      ['a', [1]],
      ['a', [2]],
    ]);
  });
});
