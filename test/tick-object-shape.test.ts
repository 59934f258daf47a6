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

const KEEPER = pathToFileURL(
  fileURLToPath(new URL('../dist/runtime/tick-object-shape.js', import.meta.url)),
).href;
const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));
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

/** Spawns node, resolves with the states from its TICK-FEEDBACK line (or fails with its output). */
function feedbackFrom(args: string[], onStarted?: (child: ChildProcess, output: () => string) => void) {
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      TOLLGATE_DATA_DIR: mkdtempSync(join(tmpdir(), 'tg-')),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  return new Promise<string[]>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /TICK-FEEDBACK (\[.*\])/.exec(output);
      if (match?.[1]) resolve(JSON.parse(match[1]) as string[]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before reporting:\n${output}`)));
    onStarted?.(child, () => output);
  });
}

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
    const kept = await feedbackFrom([...V8_FLAGS, script, 'keep']);
    expect(kept).toEqual(Array(5).fill('MONOMORPHIC'));
    // The control: the same run without the keeper loses the shapes. If this starts failing, the
    // Node in use no longer needs keepTickObjectShape (see its comment).
    const control = await feedbackFrom([...V8_FLAGS, script, 'skip']);
    expect(control).toContain('MEGAMORPHIC');
  });

  it('stay known in the built gateway after it has booted, served requests and collected', async () => {
    // Imported before dist/server.js: waits for SIGUSR2, then reports from the running gateway.
    const probe = scriptFile(
      'probe.mjs',
      `${REPORT_FUNCTION}
process.on('SIGUSR2', () => reportAfterFullGc((line) => process.stderr.write(line)));
`,
    );
    const states = await feedbackFrom([...V8_FLAGS, '--import', probe, SERVER], (child, output) => {
      void (async () => {
        let url: string | undefined;
        while (url === undefined && child.exitCode === null) {
          url = /"url":"(http:\/\/[^"]+)\/v1"/.exec(output())?.[1]?.replace('localhost', '127.0.0.1');
          if (url === undefined) await new Promise((resolve) => child.stdout?.once('data', resolve));
        }
        if (url === undefined) return;
        for (let i = 0; i < 20; i++) {
          const response = await fetch(`${url}${i % 2 === 0 ? '/healthz' : '/readyz'}`);
          await response.text();
        }
        child.kill('SIGUSR2');
      })();
    });
    expect(states).toEqual(Array(5).fill('MONOMORPHIC'));
  });
});
