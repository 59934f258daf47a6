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

export function isSealed(list: object): boolean {
  return sealed.has(list);
}
