import { entryMatches, isModelPattern } from '../registry/model-patterns.js';
import type { ModelLimits } from '../registry/records.js';

/**
 * Which of a team's `model_limits` entries a request for one model counts against: its exact
 * name's and every pattern's that covers it (`up/a` counts against `up/a`, `up/*` and `*`). Each
 * entry is one scope, `model:<entry>`, shared by every model it covers: `up/*` caps all of them
 * together. Entries are the map's keys, so an exact name and a pattern never share a scope (a
 * model literally named `up/*` is the one entry `up/*`), and scopes live under their team in both
 * quota stores, so another team's entry of the same name is another counter.
 */
export type ModelLimitEntry = readonly [entry: string, limits: ModelLimits];

const NONE: readonly ModelLimitEntry[] = Object.freeze([]);

/** Each team map's pattern entries, found once per map (① auth reads a fresh one per lookup). */
const patternsByMap = new WeakMap<object, readonly ModelLimitEntry[]>();

/** Narrower patterns first, `*` last: a refusal names the tightest group that applies. */
const narrowerFirst = (a: ModelLimitEntry, b: ModelLimitEntry) =>
  b[0].length - a[0].length || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function patternsOf(all: Readonly<Record<string, ModelLimits>>): readonly ModelLimitEntry[] {
  let patterns = patternsByMap.get(all);
  if (patterns === undefined) {
    const found = Object.entries(all).filter(([entry]) => isModelPattern(entry));
    patterns = found.length === 0 ? NONE : Object.freeze(found.sort(narrowerFirst));
    patternsByMap.set(all, patterns);
  }
  return patterns;
}

/** The entries `model` counts against: the exact one first, then the patterns covering it. */
export function modelLimitEntries(
  all: Readonly<Record<string, ModelLimits>>,
  model: string,
): readonly ModelLimitEntry[] {
  const exact = Object.hasOwn(all, model) ? all[model] : undefined;
  const patterns = patternsOf(all);
  if (patterns.length === 0) return exact ? [[model, exact]] : NONE;
  const entries: ModelLimitEntry[] = exact ? [[model, exact]] : [];
  for (const entry of patterns) if (entry[0] !== model && entryMatches(entry[0], model)) entries.push(entry);
  return entries;
}
