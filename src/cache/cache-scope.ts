/**
 * Who may read a cache entry, as the store names it: `team:<id>`, `key:<id>` or `global`. The one
 * place that writes and reads that form (the cache stage, the admin API).
 */
export type CacheScopeKind = 'team' | 'key' | 'global';

export function cacheScope(kind: CacheScopeKind, id?: string): string {
  return kind === 'global' ? 'global' : `${kind}:${id ?? ''}`;
}

/** The team or key a scope belongs to (neither for `global`). */
export function scopeOwner(scope: string): { team_id?: string; key_id?: string } {
  const at = scope.indexOf(':');
  if (at === -1) return {};
  const kind = scope.slice(0, at);
  const id = scope.slice(at + 1);
  return kind === 'team' ? { team_id: id } : kind === 'key' ? { key_id: id } : {};
}
