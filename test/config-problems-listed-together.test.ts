import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load-config.js';

/**
 * Problems that used to surface only after the schema (fastify's trustProxy, the first missing
 * module file, yaml's cut-off message) are listed with the rest, in our words, with their paths.
 */
const base = { backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } };

function caught(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tollgate-listed-')), 'tollgate.yaml');
  writeFileSync(path, text);
  return path;
}

describe('server.trustProxy', () => {
  const problemsOf = (trustProxy: unknown) =>
    caught(() => parseConfig({ ...base, server: { trustProxy } }, {}, 'test'));

  it.each([
    [true],
    ['10.0.0.0/8'],
    ['10.0.0.1, 192.168.0.0/255.255.0.0 ,loopback'],
    [['uniquelocal', '::1', 'fe80::/10', '172.16.0.0/12']],
  ])('accepts %j', (value) => {
    expect(problemsOf(value)).toEqual([]);
  });

  it('refuses what fastify would refuse at startup, saying what is wrong where', () => {
    expect(problemsOf('10.0.0.0/33')).toEqual([
      'server.trustProxy: has a prefix length out of range: after the / it takes 1 to 32 for an IPv4 address',
    ]);
    expect(problemsOf('10.0.0.1,nope')).toEqual([
      'server.trustProxy: entry 2: expected an IP address or CIDR of your proxies (such as 10.0.0.0/8), or loopback, linklocal or uniquelocal',
    ]);
    expect(problemsOf(['10.0.0.1', '::1/129', '10.0.0.0/255.0.255.0', '10.0.0.0/0'])).toEqual([
      'server.trustProxy.1: has a prefix length out of range: after the / it takes 1 to 128 for an IPv6 address',
      'server.trustProxy.2: has a netmask that is not one (such as 255.255.0.0)',
      'server.trustProxy.3: has a prefix length out of range: after the / it takes 1 to 32 for an IPv4 address',
    ]);
  });
});

describe('module backends whose files are missing', () => {
  it('are all listed at once, with the file’s other problems', () => {
    const path = configFile(`
server: {port: -1}
backends:
  mock: {type: mock}
  a: {type: module, module: ./nope1.mjs}
  b: {type: module, module: ./nope2.mjs}
  c: {type: module, module: some-package}
models:
  mock: {backend: mock}
`);
    const folder = join(path, '..');
    expect(caught(() => loadConfig({ path, env: {} }))).toEqual([
      'server.port: must be at least 0',
      `backends.a.module: module './nope1.mjs' not found (looked for ${join(folder, 'nope1.mjs')})`,
      `backends.b.module: module './nope2.mjs' not found (looked for ${join(folder, 'nope2.mjs')})`,
    ]);
  });
});

describe('YAML problems', () => {
  it('a repeated key is named, with where it is', () => {
    const path = configFile(
      'backends:\n  mock: {type: mock}\nmodels:\n  mock: {backend: mock}\n  mock: {backend: mock}\n',
    );
    expect(caught(() => loadConfig({ path, env: {} }))).toEqual([
      "not valid YAML/JSON: models: the key 'mock' appears twice in one mapping (line 5, column 3)",
    ]);
  });

  it('other syntax errors end with where they are, not a dangling colon', () => {
    const path = configFile('backends: [1, 2\nmodels: {}\n');
    const problems = caught(() => loadConfig({ path, env: {} }));
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems)
      expect(problem).toMatch(/^not valid YAML\/JSON: .* at line \d+, column \d+$/);
  });
});

describe('byte sizes', () => {
  it('say what they take without repeating the value', () => {
    const problems = caught(() => parseConfig({ ...base, server: { bodyLimit: '20 parsecs' } }, {}, 'test'));
    expect(problems).toEqual([
      'server.bodyLimit: expected a byte size such as 20mb or 1048576: a whole number of bytes, or a number with b, kb, mb or gb',
    ]);
  });
});
