import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli-process.js';
import { type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { REFUSED_ORIGIN } from './support/refused-port.js';

/**
 * `tollgate serve` and the program's options only the admin commands use (--admin-key, --url,
 * --json, --timeout): commander takes them with serve too, where a gateway would ignore them.
 */

/**
 * A config file that does not exist: were serve to accept the option, it would fail to start at
 * once (exit 1) instead of running on; refused, it exits 2 before reading any config.
 */
const NO_CONFIG = { TOLLGATE_CONFIG: '/nonexistent/tollgate-test.yaml' };
const OWN_KEY = 'my-own-admin-key-123456';

describe('serve refuses the admin commands’ options', () => {
  it('--admin-key: exit 2, one line naming TOLLGATE_ADMIN_KEY and admin.key, the key not echoed', async () => {
    for (const args of [
      ['serve', '--admin-key', OWN_KEY],
      ['--admin-key', OWN_KEY, 'serve'],
      // serve is the default command: no command at all is serve too.
      ['--config', '/nonexistent/tollgate-test.yaml', '--admin-key', OWN_KEY],
    ]) {
      const result = await runCli(args, NO_CONFIG);
      const name = args.join(' ');
      expect(result.code, name).toBe(2);
      expect(result.stdout, name).toBe('');
      expect(result.stderr.trimEnd().split('\n'), name).toHaveLength(1);
      expect(result.stderr, name).toContain('--admin-key is for the admin commands, not serve');
      expect(result.stderr, name).toContain('TOLLGATE_ADMIN_KEY or admin.key in the config');
      expect(result.stderr, name).not.toContain(OWN_KEY);
      expect(result.stderr, name).not.toContain('failed to start');
    }
  });

  it('--url, --json and --timeout: exit 2 with one line each', async () => {
    for (const [args, said] of [
      [['serve', '--url', 'http://127.0.0.1:9'], '--url is for the admin commands, not serve'],
      [['serve', '--json'], '--json is for the admin commands, not serve'],
      [['--timeout', '5s'], '--timeout is for the admin commands, not serve'],
      [['serve', '--json', '--url', 'http://127.0.0.1:9'], '--url, --json are for the admin commands'],
    ] as const) {
      const result = await runCli([...args], NO_CONFIG);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain(said);
      expect(result.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  describe('from the environment, TOLLGATE_ADMIN_KEY is the gateway’s key and TOLLGATE_URL is ignored', () => {
    let gateway: GatewayProcess | undefined;
    afterAll(() => gateway?.stop());

    it('serve starts with both exported and takes the exported admin key as its own', async () => {
      gateway = await startGatewayProcess({ TOLLGATE_ADMIN_KEY: OWN_KEY, TOLLGATE_URL: REFUSED_ORIGIN });
      const teams = await runCli(['teams', 'list', '--url', gateway.url], { TOLLGATE_ADMIN_KEY: OWN_KEY });
      expect(teams.stderr).toBe('');
      expect(teams.code).toBe(0);
      expect(gateway.output()).not.toContain(OWN_KEY);
    });
  });
});

describe('serve --help', () => {
  it('lists only what serve takes, and says where the admin key comes from', async () => {
    const result = await runCli(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--config');
    for (const option of ['--admin-key', '--url', '--json', '--timeout', 'Global Options']) {
      expect(result.stdout, option).not.toContain(option);
    }
    expect(result.stdout).toContain("The gateway's admin key: TOLLGATE_ADMIN_KEY or admin.key in the config");
  });

  it('and the top level list every environment variable the gateway reads at boot', async () => {
    const configDir = fileURLToPath(new URL('../src/config', import.meta.url));
    const read = new Set<string>();
    for (const file of readdirSync(configDir)) {
      const source = readFileSync(join(configDir, file), 'utf8');
      for (const [, name] of source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b/g)) if (name) read.add(name);
    }
    // The ones named in the report, so a change in how the config is read cannot empty the check.
    for (const name of [
      'TOLLGATE_ADMIN_KEY',
      'TOLLGATE_AUTH',
      'TOLLGATE_DATA_DIR',
      'TOLLGATE_CONFIG',
      'PORT',
    ])
      expect(read).toContain(name);

    for (const args of [['--help'], ['serve', '--help']]) {
      const help = (await runCli(args)).stdout;
      const environment = help.slice(help.indexOf('Environment (serve):'));
      for (const name of read)
        expect(environment, `${args.join(' ')}: ${name}`).toMatch(new RegExp(`\\b${name}\\b`));
    }
  });
});
