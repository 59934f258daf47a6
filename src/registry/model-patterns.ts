/**
 * Allowlists are lists of model names and patterns: `*` (everything), `prefix/*` (everything
 * under a prefix) or an exact public model name. A team's `model_limits` are keyed the same way.
 */

/** True for `*` and `prefix/*`: entries that stand for a group of models rather than one name. */
export function isModelPattern(entry: string): boolean {
  return entry === '*' || entry.endsWith('/*');
}

/**
 * A name, `*` or `prefix/*`: a `*` anywhere else would be taken for a pattern by whoever wrote it
 * and match only itself (the admin schema's rule for `models`, and the registry's for `model_limits`).
 */
export function isWellFormedModelEntry(entry: string): boolean {
  return !entry.includes('*') || entry === '*' || /^[^*]+\/\*$/.test(entry);
}

/** Whether one allowlist entry (a name or a pattern) covers `model`. */
export function entryMatches(entry: string, model: string): boolean {
  return entry === '*' || entry === model || (entry.endsWith('/*') && model.startsWith(entry.slice(0, -1)));
}

export function modelAllowed(patterns: readonly string[], model: string): boolean {
  for (const pattern of patterns) if (entryMatches(pattern, model)) return true;
  return false;
}

/** True when everything `inner` allows, `outer` allows too (a key's list within its team's). */
export function patternsWithin(inner: readonly string[], outer: readonly string[]): boolean {
  return inner.every((pattern) => {
    if (pattern === '*') return outer.includes('*');
    if (pattern.endsWith('/*')) {
      const prefix = pattern.slice(0, -1);
      return outer.some((o) => o === '*' || (o.endsWith('/*') && prefix.startsWith(o.slice(0, -1))));
    }
    return modelAllowed(outer, pattern);
  });
}

/**
 * True when some model name is covered both by `entry` and by `allowed`: a limit on `up/*`
 * binds a team allowed `up/a`, and one on `*` binds any team; one on `down/*` binds nothing in
 * a team allowed only `up/*`.
 */
export function patternsOverlap(entry: string, allowed: readonly string[]): boolean {
  if (!isModelPattern(entry)) return modelAllowed(allowed, entry);
  if (entry === '*') return allowed.length > 0;
  const prefix = entry.slice(0, -1);
  return allowed.some(
    (other) =>
      entryMatches(entry, other) ||
      (other.endsWith('/*') && prefix.startsWith(other.slice(0, -1))) ||
      other === '*',
  );
}
