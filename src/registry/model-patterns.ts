/**
 * Allowlists are lists of model names and patterns: `*` (everything), `prefix/*` (everything
 * under a prefix) or an exact public model name.
 */
export function modelAllowed(patterns: readonly string[], model: string): boolean {
  for (const pattern of patterns) {
    if (pattern === '*' || pattern === model) return true;
    if (pattern.endsWith('/*') && model.startsWith(pattern.slice(0, -1))) return true;
  }
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
