/**
 * The entry of a per-model table (prices, max tokens) for an upstream model name: the exact entry,
 * else the longest entry the name starts with followed by `-` (`gpt-4o-2024-08-06` finds `gpt-4o`,
 * `claude-sonnet-4-20250514` finds `claude-sonnet-4`), so dated and suffixed names need no rows.
 */
export function lookUpByModelPrefix<T>(table: Readonly<Record<string, T>>, model: string): T | undefined {
  const exact = table[model];
  if (exact !== undefined) return exact;
  let best: string | undefined;
  for (const name of Object.keys(table)) {
    if (model.startsWith(`${name}-`) && (best === undefined || name.length > best.length)) best = name;
  }
  return best === undefined ? undefined : table[best];
}
