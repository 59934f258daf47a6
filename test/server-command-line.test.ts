import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gatewayProcessEnv } from './support/gateway-process.js';

/**
 * `node dist/server.js` (what `npm start` runs): a mistyped option, a missing value or a stray
 * argument is one line in our words and the usage (exit 2), never node's stack trace or a boot
 * on the embedded defaults; -h prints the usage. A data directory or state file it cannot use
 * is named, with the setting, in our words.
 */
const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-cmdline-'));
  const child = spawn(process.execPath, [SERVER, ...args], {
    env: gatewayProcessEnv(dataDir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  // A gateway that boots after all is stopped by the test's own timeout, not waited for here.
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

const USAGE_LINE = 'Usage: node dist/server.js [--config <file>]';

describe('node dist/server.js arguments', () => {
  it.each([
    [['--confg', 'x.yaml'], "tollgate: unknown option '--confg'"],
    [['-x'], "tollgate: unknown option '-x'"],
    [['--config'], 'tollgate: --config needs a value: the path of a YAML or JSON file'],
    [['--config='], 'tollgate: --config needs a value: the path of a YAML or JSON file'],
    [['bad.yaml'], "tollgate: unexpected argument 'bad.yaml' (for a config file: --config bad.yaml)"],
    [['--config', 'a.yaml', 'b.yaml'], "tollgate: unexpected argument 'b.yaml'"],
  ])('%j is a usage error', async (args, line) => {
    const { code, output } = await run(args);
    expect(code).toBe(2);
    expect(output.split('\n')[0]).toBe(line);
    expect(output).toContain(USAGE_LINE);
    expect(output).not.toMatch(/ERR_PARSE_ARGS|\n\s+at /);
  });

  it.each([['-h'], ['--help']])('%s prints the usage and exits 0', async (flag) => {
    const { code, output } = await run([flag]);
    expect(code).toBe(0);
    expect(output.startsWith(USAGE_LINE)).toBe(true);
    expect(output).toContain('-c, --config <file>');
  });
});

describe('a data directory the gateway cannot use', () => {
  it('a file where the folder should be, named with its variable', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tollgate-cmdline-')), 'not-a-folder');
    writeFileSync(file, '');
    const { code, output } = await run([], { TOLLGATE_DATA_DIR: file });
    expect(code).toBe(1);
    expect(output.trim()).toBe(
      `tollgate failed to start: TOLLGATE_DATA_DIR (dataDir): cannot use ${file} as the data directory: it is a file, not a folder`,
    );
  });

  it('under a file, named by its path in the config file', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-cmdline-'));
    writeFileSync(join(folder, 'file'), '');
    const config = join(folder, 'tollgate.yaml');
    writeFileSync(
      config,
      `dataDir: ${join(folder, 'file', 'data')}\nbackends: {mock: {type: mock}}\nmodels: {mock: {backend: mock}}\n`,
    );
    const { code, output } = await run(['--config', config], { TOLLGATE_DATA_DIR: '' });
    expect(code).toBe(1);
    expect(output.trim()).toBe(
      `tollgate failed to start: dataDir: cannot use ${join(folder, 'file', 'data')} as the data directory: part of the path is a file, not a folder`,
    );
  });

  it.each([
    ['not JSON', '{x'],
    ['JSON of another shape', '{"version":1}'],
    ['a key without its hashes', '{"version":1,"teams":[],"keys":[{"id":"k"}],"audit":[],"settings":{}}'],
    ['empty', ''],
  ])('a damaged state file (%s) is named as damaged, without a stack', async (_name, text) => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'tollgate-cmdline-')), 'data');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'tollgate-state.json'), text);
    const { code, output } = await run([], { TOLLGATE_DATA_DIR: dataDir });
    expect(code).toBe(1);
    expect(output.trim()).toMatch(
      new RegExp(
        `^tollgate failed to start: TOLLGATE_DATA_DIR \\(dataDir\\): the state file ${join(dataDir, 'tollgate-state.json').replaceAll('/', '\\/')} is damaged \\(.*\\): the gateway does not start on it`,
      ),
    );
    expect(output.trim().split('\n')).toHaveLength(1);
  });
});
