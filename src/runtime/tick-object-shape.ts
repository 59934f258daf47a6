import { createHook } from 'node:async_hooks';

/**
 * One entry of Node's `process.nextTick` queue, held for the life of the process.
 *
 * Why: nextTick builds each entry as an object literal with symbol keys, and V8 records, for
 * each key after the first, the one shape (map) the entry had before that key was added. Those
 * shapes live only while some object has them. When a full garbage collection runs while no
 * entry is queued (it does during our boot, which allocates tens of MB), they are collected, the
 * next entry gets new ones, V8 marks the recorded feedback megamorphic for good, and the
 * optimised nextTick then calls into V8's runtime for four of each entry's five keys: ~33 runtime
 * calls per proxied request, about 5 % of the instructions a request costs (BENCHMARKS.md,
 * "nextTick's entries"). Holding one entry keeps its shape, and through each shape's link to its
 * parent every intermediate shape, alive, so the feedback stays monomorphic.
 *
 * Call it first thing in a process, before anything allocates much: once the feedback has gone
 * megamorphic, holding an entry no longer helps.
 */
let heldEntry: object | undefined;

export function keepTickObjectShape(): void {
  if (heldEntry !== undefined) return;
  // The init hook is the public way to see a queue entry (its `resource`); it is on for the one
  // nextTick below only, so no other async resource pays for it.
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && heldEntry === undefined) heldEntry = resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(ignore);
  } finally {
    hook.disable();
  }
}

function ignore(): void {}
