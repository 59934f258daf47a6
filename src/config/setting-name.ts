import type { Config } from './schema.js';

/**
 * How a message names the setting at `path`: `REDIS_URL (redis.url)` when an environment
 * variable set it (the path alone is not in the file), the path otherwise.
 */
export function settingName(config: Pick<Config, 'fromEnvironment'>, path: string): string {
  const variable = config.fromEnvironment?.[path];
  return variable === undefined ? path : `${variable} (${path})`;
}
