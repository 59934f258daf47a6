import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { gatewayProcessEnv } from './support/gateway-process.js';

/**
 * A boot with several broken backend modules says what is wrong with each of them, in config
 * order, not only the first (fix one, boot, find the next); and a module that fails to load
 * says where: a syntax error names its file and line, which node's own error does not. Run as
 * the built gateway (`node dist/server.js`): modules are imported by node's own loader there,
 * not by vitest's, and the operator reads the reason on stderr.
 */

const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));

function folder(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tollgate-module-boot-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** What the gateway says when it cannot start with these backends (the first is the model's). */
function bootFailure(backends: Record<string, Record<string, unknown>>, root: string): Promise<string> {
  const config = join(root, 'tollgate.yaml');
  writeFileSync(
    config,
    stringify({ backends, models: { m: { backend: Object.keys(backends)[0] as string } } }),
  );
  const child = spawn(process.execPath, [SERVER, '--config', config], {
    env: gatewayProcessEnv(join(root, 'data')),
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
  return new Promise((resolve) =>
    child.once('close', (code) => {
      expect(code, output).toBe(1);
      resolve(output.trim());
    }),
  );
}

describe('a boot with several broken modules', () => {
  it('lists every one, in config order, and closes the one that loaded', async () => {
    const root = folder({
      'ok.mjs': `import { writeFileSync } from 'node:fs';
export default function () {
  return { supports: () => true, send: async () => { throw new Error('unused'); },
    close: async () => { writeFileSync(new URL('./closed', import.meta.url), ''); } };
}\n`,
      'no-factory.mjs': 'export const x = 1;\n',
      'factory-throws.mjs': "export default function () { throw new Error('no GPU here'); }\n",
      'no-send.mjs': "export default function () { return { supports: () => true, listModels: 'nope' }; }\n",
      'syntax.mjs':
        'export default function () {\n  return { supports: () => true,\n    send: async () => 1 2 };\n}\n',
      'hangs.mjs': 'export default function () { return new Promise(() => {}); }\n',
      'throws-on-load.mjs': "throw new Error('no config file found');\n",
    });
    const output = await bootFailure(
      {
        ok: { type: 'module', module: './ok.mjs' },
        b: { type: 'module', module: './no-factory.mjs' },
        c: { type: 'module', module: './factory-throws.mjs' },
        d: { type: 'module', module: './no-send.mjs' },
        e: { type: 'module', module: './syntax.mjs' },
        f: { type: 'module', module: 'tollgate-no-such-backend-package' },
        g: { type: 'module', module: './hangs.mjs', timeoutMs: 50 },
        h: { type: 'module', module: './throws-on-load.mjs' },
      },
      root,
    );
    const lines = output.split('\n');
    expect(lines[0]).toBe('tollgate failed to start: 7 backend modules cannot be used:');
    expect(lines).toHaveLength(8);
    expect(lines.slice(1).map((line) => line.slice(0, line.indexOf(':')))).toEqual(
      ['b', 'c', 'd', 'e', 'f', 'g', 'h'].map((name) => `  - backends.${name}`),
    );
    expect(lines[1]).toMatch(/exports no backend factory/);
    expect(lines[2]).toMatch(/createBackend threw: no GPU here$/);
    expect(lines[3]).toMatch(/lacks send\(\)/);
    expect(lines[4]).toBe(
      `  - backends.e: module './syntax.mjs' failed to load: SyntaxError: Unexpected number (at ${join(root, 'syntax.mjs')}:3)`,
    );
    expect(lines[5]).toMatch(/module 'tollgate-no-such-backend-package' not found/);
    expect(lines[6]).toMatch(/did not return a backend within timeoutMs \(50 ms\)$/);
    expect(lines[7]).toBe(
      `  - backends.h: module './throws-on-load.mjs' failed to load: no config file found (at ${join(root, 'throws-on-load.mjs')}:1:7)`,
    );
    expect(existsSync(join(root, 'closed')), 'the module that loaded was closed').toBe(true);
  });

  it('one broken module is reported as it is', async () => {
    const root = folder({
      'ok.mjs': 'export default () => ({ supports: () => true, send: async () => ({}) });\n',
    });
    const output = await bootFailure(
      { ok: { type: 'module', module: './ok.mjs' }, bad: { type: 'module', module: 'yaml' } },
      root,
    );
    expect(output).toBe(
      "tollgate failed to start: backends.bad: module 'yaml' exports no backend factory: export a function createBackend(name, options, context), as its default export or named createBackend",
    );
  });
});

describe('where a module failed to load', () => {
  it('a syntax error in a file the module imports: says it is not in the module itself', async () => {
    const root = folder({
      'entry.mjs': "import './helpers/broken.mjs';\nexport default () => ({});\n",
      'helpers/broken.mjs': '\n\nlet = = 3;\n',
    });
    expect(await bootFailure({ entry: { type: 'module', module: './entry.mjs' } }, root)).toBe(
      `tollgate failed to start: backends.entry: module './entry.mjs' failed to load: SyntaxError: Unexpected strict mode reserved word (in a module ${join(root, 'entry.mjs')} imports)`,
    );
  });

  it('an import that names an export its target lacks: file and line', async () => {
    const root = folder({
      'wrong-import.mjs': "\nimport { nope } from 'node:fs';\nexport default () => ({});\n",
    });
    expect(await bootFailure({ w: { type: 'module', module: './wrong-import.mjs' } }, root)).toBe(
      `tollgate failed to start: backends.w: module './wrong-import.mjs' failed to load: SyntaxError: The requested module 'node:fs' does not provide an export named 'nope' (at ${join(root, 'wrong-import.mjs')}:2)`,
    );
  });
});
