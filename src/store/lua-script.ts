import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { evalsha } from './redis-client.js';

/**
 * The Lua scripts live in ./lua/ beside this module: src/store/lua/ when run from the sources,
 * <build>/store/lua/ when run from dist/ (scripts/build.mjs and the Dockerfile copy them there,
 * since tsc copies only .ts output).
 */
const LUA_DIR = new URL('./lua/', import.meta.url);

export interface LuaScript {
  /** The files it was made of, for error messages. */
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

/**
 * Reads a script made of one or more files of ./lua/ joined in order (a shared prelude first),
 * once, when the module defining it loads: a build that lacks them fails at start, not at the
 * first request.
 */
export function loadLua(...files: string[]): LuaScript {
  const source = files.map((file) => readFileSync(new URL(`${file}.lua`, LUA_DIR), 'utf8')).join('\n');
  return { name: files.join('+'), source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * The one way scripts reach Redis: EVALSHA, falling back to EVAL once per node when the script
 * is not cached there yet (a restart, a new Cluster node), so the hot path sends a hash, not the
 * script text.
 */
export async function runLua(
  client: Redis | Cluster,
  script: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number | Buffer>,
): Promise<unknown> {
  try {
    return await evalsha(client, script.sha, keys, args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client.eval(script.source, keys.length, ...keys, ...args);
  }
}
