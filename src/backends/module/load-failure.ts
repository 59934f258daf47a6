import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How long `node --check` may take to find a syntax error's line (it only parses one file). */
const CHECK_TIMEOUT_MS = 10_000;

/** `file:///x.mjs:3` or `/x.cjs:3`: the head node gives a syntax error it could place. */
const PLACE = /^((?:file:\/\/|\/|[A-Za-z]:\\).*?):(\d+)$/;
/** `at file:///x.mjs:1:7` or `at fn (/x.js:3:9)`: a stack frame in a file (not node's own). */
const FRAME = /^at (?:.* \()?((?:file:\/\/|\/|[A-Za-z]:\\)[^()]*?):(\d+):(\d+)\)?$/;

function shownPath(place: string): string {
  try {
    return place.startsWith('file:') ? fileURLToPath(place) : place;
  } catch {
    return place;
  }
}

/** Where in which file `error` happened, as its stack says: `path:line` (`:column` for a throw). */
function placeInStack(error: Error): string | undefined {
  const lines = (error.stack ?? '').split('\n');
  const head = PLACE.exec(lines[0] ?? '');
  if (head) return `${shownPath(head[1] as string)}:${head[2]}`;
  for (const line of lines.slice(1)) {
    const frame = FRAME.exec(line.trim());
    if (frame) return `${shownPath(frame[1] as string)}:${frame[2]}:${frame[3]}`;
  }
  return undefined;
}

/** The file an import specifier loads, when it is one (a file: URL, or a package resolved to one). */
function fileOf(specifier: string): string | undefined {
  try {
    const url = specifier.startsWith('file:') ? specifier : import.meta.resolve(specifier);
    return url.startsWith('file:') ? fileURLToPath(url) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where a syntax error is: node's ESM loader throws it without the file or the line, which only
 * its crash report (not the error) shows. `node --check` parses the file without running it and
 * reports them. When the file itself parses, the error is in a module it imports.
 */
async function placeOfSyntaxError(file: string): Promise<string> {
  try {
    await run(process.execPath, ['--check', file], { timeout: CHECK_TIMEOUT_MS });
    return `in a module ${file} imports`;
  } catch (failed) {
    const stderr = String((failed as { stderr?: unknown }).stderr ?? '');
    const head = PLACE.exec(stderr.split('\n', 1)[0] ?? '');
    return head ? `at ${shownPath(head[1] as string)}:${head[2]}` : `in ${file}`;
  }
}

/**
 * Why importing a module failed, in one line that says where: the error's first line (with its
 * name when it has its own, `SyntaxError: ...`), then the file and line it happened at.
 */
export async function describeLoadFailure(error: unknown, specifier: string): Promise<string> {
  if (!(error instanceof Error)) return String(error).split('\n')[0] ?? '';
  const firstLine = error.message.split('\n')[0] ?? '';
  const said = error.name && error.name !== 'Error' ? `${error.name}: ${firstLine}` : firstLine;
  const place = placeInStack(error);
  if (place) return `${said} (at ${place})`;
  const file = error instanceof SyntaxError ? fileOf(specifier) : undefined;
  return file ? `${said} (${await placeOfSyntaxError(file)})` : said;
}
