/**
 * keepTickObjectShape: after a full garbage collection with no nextTick entry queued, V8's
 * feedback for nextTick's entry literal must still know one shape per key (monomorphic); without
 * the keeper it turns megamorphic and every later entry costs four calls into V8's runtime.
 * Observed with V8's own test natives (`--allow-natives-syntax`, `%GetFeedback`) in child
 * processes, and with `--expose-gc` so the collections happen when the test says, not by load.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayProcessEnv, listeningUrl } from './support/gateway-process.js';

const KEEPER = pathToFileURL(
  fileURLToPath(new URL('../dist/runtime/tick-object-shape.js', import.meta.url)),
).href;
const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const V8_FLAGS = ['--allow-natives-syntax', '--expose-gc'];

/**
 * Script text shared by both children: `reportAfterFullGc(write)` runs 50 nextTicks (so nextTick
 * has feedback), collects twice from a setImmediate (no entry is queued there), runs 20 more and
 * writes the states of nextTick's DefineKeyedOwnPropertyInLiteral slots as one JSON line.
 */
const REPORT_FUNCTION = `
function feedbackStates() {
  return %GetFeedback(process.nextTick)
    .filter((entry) => Array.isArray(entry) && String(entry[0]).includes('DefineKeyedOwnPropertyInLiteral'))
    .map((entry) => String(entry[1]).trim().split(/\\s/)[0]);
}
function reportAfterFullGc(write) {
  let warm = 0;
  const warmUp = () => {
    if (++warm < 50) process.nextTick(warmUp);
    else setImmediate(collect);
  };
  const collect = () => {
    globalThis.gc();
    globalThis.gc();
    let after = 0;
    const again = () => {
      if (++after < 20) process.nextTick(again);
      else write('TICK-FEEDBACK ' + JSON.stringify(feedbackStates()) + '\\n');
    };
    again();
  };
  warmUp();
}
`;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function scriptFile(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tollgate-tick-shape-')), name);
  writeFileSync(path, text);
  return path;
}

interface Report {
  /** The states of nextTick's literal-key slots, from the TICK-FEEDBACK line. */
  states: string[];
  /** Everything the child wrote until then. */
  output: string;
}

/**
 * Spawns node and resolves with its TICK-FEEDBACK report; fails with its output if it ends first,
 * or if `drive` (given the child and its output so far) fails.
 */
function reportFrom(
  args: string[],
  drive?: (child: ChildProcess, output: () => string) => Promise<void>,
): Promise<Report> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-tick-data-'));
  const child = spawn(process.execPath, args, {
    env: gatewayProcessEnv(dataDir),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  return new Promise<Report>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /TICK-FEEDBACK (\[.*\])/.exec(output);
      if (match?.[1]) resolve({ states: JSON.parse(match[1]) as string[], output });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    // 'close', not 'exit': by then everything it wrote has been read.
    child.once('close', (code) => reject(new Error(`exited with ${code} before reporting:\n${output}`)));
    drive?.(child, () => output).catch((error: Error) => reject(new Error(`${error.message}\n${output}`)));
  });
}

/** Waits for the gateway's URL line, sends it 20 requests, then asks the probe for its report. */
async function serveThenReport(child: ChildProcess, output: () => string): Promise<void> {
  const url = await listeningUrl(child, output);
  for (let i = 0; i < 20; i++) {
    const response = await fetch(`${url}${i % 2 === 0 ? '/healthz' : '/readyz'}`);
    await response.text();
  }
  child.kill('SIGUSR2');
}

/** Node 24's entry literal has five keys, and V8 one feedback slot per key. */
const ALL_MONOMORPHIC = Array(5).fill('MONOMORPHIC');

describe('nextTick entry shapes', () => {
  it('stay known to V8 through full collections once keepTickObjectShape has run, and do not without it', async () => {
    const script = scriptFile(
      'report.mjs',
      `import { keepTickObjectShape } from '${KEEPER}';
${REPORT_FUNCTION}
if (process.argv[2] === 'keep') keepTickObjectShape();
reportAfterFullGc((line) => process.stdout.write(line));
`,
    );
    expect((await reportFrom([...V8_FLAGS, script, 'keep'])).states).toEqual(ALL_MONOMORPHIC);
    // The control: the same run without the keeper loses the shapes. If this starts failing, the
    // Node in use no longer needs keepTickObjectShape (see its comment).
    expect((await reportFrom([...V8_FLAGS, script, 'skip'])).states).toContain('MEGAMORPHIC');
  });

  // Both ways a gateway starts: `node dist/server.js` (npm start) and `tollgate serve` (the
  // Docker image's entry). The probe is loaded first (--import) and reports on SIGUSR2, after the
  // gateway's own boot-time collection and 20 requests. V8's --trace-protector-invalidation shows
  // that keeping the entry did not switch on promise hooks (an async_hooks hook would, for good).
  it.each([
    ['dist/server.js', [SERVER]],
    ['tollgate serve', [CLI, 'serve']],
  ])('stay known in the built gateway started as %s, with promise hooks left off', async (_name, entry) => {
    const probe = scriptFile(
      'probe.mjs',
      `${REPORT_FUNCTION}
process.on('SIGUSR2', () => reportAfterFullGc((line) => process.stderr.write(line)));
`,
    );
    const report = await reportFrom(
      [...V8_FLAGS, '--trace-protector-invalidation', '--import', probe, ...entry],
      serveThenReport,
    );
    expect(report.states).toEqual(ALL_MONOMORPHIC);
    expect(report.output).not.toContain('protector cell PromiseHook');
  });
});
