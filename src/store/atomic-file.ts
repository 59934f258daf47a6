import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteHooks {
  /** Test seam: runs after the temporary file is written, before it replaces the real one. */
  beforeRename?: () => void | Promise<void>;
}

/**
 * Replaces `path` with `data` so that a crash at any moment leaves either the old file or the
 * new one, never a torn mix: write a temporary file beside it, fsync it, rename it over the
 * old one (atomic on POSIX), then fsync the directory so the rename itself is durable.
 */
export async function writeFileAtomic(
  path: string,
  data: string,
  hooks: AtomicWriteHooks = {},
): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(data, 'utf8');
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await hooks.beforeRename?.();
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
