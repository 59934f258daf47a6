/**
 * Scope lists their maker promises never to change: frozen all the way down and known by
 * identity, so a store may keep what it derives from one (its validation, its JSON for
 * quota-turn.lua) for as long as the list lives. QuotaStage builds a key's lists once a day and
 * seals them, instead of building, checking and writing them out for every request.
 */
const sealed = new WeakSet<object>();

function freezeDeep(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  Object.freeze(value);
  for (const inner of Object.values(value)) freezeDeep(inner);
}

export function seal<T extends object>(list: readonly T[]): readonly T[] {
  freezeDeep(list);
  sealed.add(list);
  return list;
}

/**
 * What `derive` makes of `list`: made once for a sealed list and kept in `kept` while the list
 * lives, made afresh for any other. A `derive` that throws keeps nothing.
 */
export function derivedOnce<L extends object, V>(kept: WeakMap<L, V>, list: L, derive: (list: L) => V): V {
  if (!sealed.has(list)) return derive(list);
  let value = kept.get(list);
  if (value === undefined) {
    value = derive(list);
    kept.set(list, value);
  }
  return value;
}
