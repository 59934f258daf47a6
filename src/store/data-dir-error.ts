/**
 * The data directory, or the state file in it, cannot be used: said in our words, naming the
 * path (src/store/create-store.ts adds the setting's name, dataDir or TOLLGATE_DATA_DIR).
 */
export class DataDirError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataDirError';
  }
}

/** What a file system error code means here, in a few words. */
export function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'EEXIST':
      return 'it is a file, not a folder';
    case 'ENOTDIR':
      return 'part of the path is a file, not a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied (the gateway runs as a user that may not write there)';
    case 'EROFS':
      return 'it is on a read-only file system';
    case 'ENOSPC':
      return 'no space is left on the device';
    case 'EISDIR':
      return 'it is a folder, not a file';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}
