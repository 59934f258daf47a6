import { executionAsyncResource } from 'node:async_hooks';

let heldEntry: object | undefined;

/**
 * Holds one entry of Node's `process.nextTick` queue for the life of the process.
 *
 * Why: nextTick builds each entry as an object literal with symbol keys, and V8 records, for
 * each key after the first, the one shape (map) the entry had before that key was added. Those
 * shapes live only while some object has them. A full garbage collection that runs while no entry
 * is queued collects them (our own `releaseBootMemory` runs one right after boot; ordinary full
 * collections can too), the next entry gets new ones, V8 marks the recorded feedback megamorphic
 * for good, and the optimised nextTick then calls into V8's runtime for four of each entry's five
 * keys: ~33 runtime calls per proxied request (BENCHMARKS.md, "nextTick's entries kept fast").
 * Holding one entry keeps its shape, and through each shape's link to its parent every
 * intermediate shape, alive, so the feedback stays monomorphic.
 *
 * Call it first thing in a process, before the first full collection once nextTick has run:
 * once the feedback has gone megamorphic, holding an entry no longer helps. The entry is taken
 * as the resource of its own callback, not through an async_hooks init hook: enabling any hook
 * turns V8's promise hooks on, which permanently slows every promise in the process.
 */
export function keepTickObjectShape(): void {
  if (heldEntry !== undefined) return;
  process.nextTick(holdCurrentEntry);
}

function holdCurrentEntry(): void {
  heldEntry ??= executionAsyncResource();
}
