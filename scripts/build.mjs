#!/usr/bin/env node
// Builds dist/ from src/ with tsc, at most once per change of the sources.
//
//   node scripts/build.mjs            build only if src/ changed since the last build (prepare, prestart)
//   node scripts/build.mjs --always   build whatever the stamp says (npm run build)
//
// Why not `tsc` on every `npm start`: a start that rebuilt dist/ while another start was loading
// it crashed the other one (half-written modules). So:
// - a start on fresh sources only compares modification times (one stat per source file);
// - a build writes a new folder .dist-<id>/ and then switches the `dist` symlink to it in one
//   rename, so no process ever loads a half-written dist/: Node resolves modules by their real
//   path, so a gateway that started on the previous build keeps loading from it;
// - builds take a lock (a directory, created atomically): a second start waits for the first
//   one's build, then finds dist/ fresh and starts on it.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
/** Builds sit beside package.json (modules read `../package.json` from their own folder). */
const BUILD_PREFIX = '.dist-';
const lock = join(root, '.build.lock');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];
/** A lock older than this was left by a build that died: take it over. */
const STALE_LOCK_MS = 600_000;
/** Builds kept: the current one and the one before (gateways started on it may still run). */
const KEEP_BUILDS = 2;
const always = process.argv.includes('--always');

function newestMtime(path) {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    return 0;
  }
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function fresh() {
  let built;
  try {
    built = statSync(join(dist, '.build-stamp')).mtimeMs;
  } catch {
    return false;
  }
  return INPUTS.every((input) => newestMtime(join(root, input)) <= built);
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function acquireLock() {
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    try {
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
    } catch {
      // Released meanwhile.
    }
    sleep(100);
  }
}

function build() {
  const started = Date.now();
  const id = `${started.toString(36)}-${process.pid}`;
  const out = join(root, `${BUILD_PREFIX}${id}`);
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    rmSync(out, { recursive: true, force: true });
    process.stderr.write('build: tsc failed; dist/ is unchanged\n');
    return result.status ?? 1;
  }
  // tsc emits only .js: the store's Lua scripts are read at run time from beside their module.
  cpSync(join(root, 'src', 'store', 'lua'), join(out, 'store', 'lua'), { recursive: true });
  // npm made the bin executable at install; this build wrote a new file.
  chmodSync(join(out, 'cli', 'main.js'), 0o755);
  // Stamped with the build's start: a source saved during the build makes the next start rebuild.
  const stamp = join(out, '.build-stamp');
  writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
  utimesSync(stamp, started / 1000, started / 1000);

  // The switch: a new symlink renamed over the old one is atomic. A dist/ that is a real folder
  // (an older checkout's) is removed first; nothing can be loading it through the new layout.
  const link = join(root, `.link-${id}`);
  symlinkSync(`${BUILD_PREFIX}${id}`, link);
  try {
    if (!lstatSync(dist).isSymbolicLink()) rmSync(dist, { recursive: true, force: true });
  } catch {
    // No dist/ yet.
  }
  renameSync(link, dist);

  const old = readdirSync(root)
    .filter((name) => name.startsWith(BUILD_PREFIX) && name !== `${BUILD_PREFIX}${id}`)
    .sort((a, b) => statSync(join(root, b)).mtimeMs - statSync(join(root, a)).mtimeMs);
  for (const name of old.slice(KEEP_BUILDS - 1)) rmSync(join(root, name), { recursive: true, force: true });
  process.stderr.write(`build: dist/ built from src/ in ${Date.now() - started} ms\n`);
  return 0;
}

// A Docker dependency layer (no sources yet) or a production install (no TypeScript): nothing to do.
if (!existsSync(join(root, 'src')) || !existsSync(tsc)) {
  if (!existsSync(join(dist, 'server.js'))) {
    process.stderr.write('build: skipped (no src/ or no TypeScript here); dist/ is not built\n');
  }
  process.exit(0);
}
if (!always && fresh()) process.exit(0);

acquireLock();
try {
  // Another start may have built while this one waited for the lock.
  if (always || !fresh()) process.exitCode = build();
} finally {
  rmSync(lock, { recursive: true, force: true });
}
