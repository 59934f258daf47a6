import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tollgate from 'tollgate';
import * as testing from 'tollgate/testing';
import { describe, expect, it } from 'vitest';

/**
 * The package's public surface (`tollgate`, `tollgate/testing`, resolved by name through
 * package.json "exports" to the built dist/), and the rule that keeps vitest out of the
 * gateway's runtime: only src/testing/ may import vitest, and nothing else imports src/testing/.
 */

const SRC = fileURLToPath(new URL('../src', import.meta.url));

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the package’s exports', () => {
  it("'tollgate' has what a module author needs, and nothing that starts the gateway", () => {
    expect(Object.keys(tollgate).sort()).toEqual(
      [
        'BackendBusyError',
        'ClientAbortedError',
        'ENDPOINT_PATHS',
        'EndpointNotSupportedError',
        'GatewayError',
        'InvalidRequestError',
        'ServiceUnavailableError',
        'UpstreamClientError',
        'UpstreamError',
        'UpstreamTimeoutError',
        'encodeDone',
        'encodeEvent',
      ].sort(),
    );
    expect(tollgate.encodeEvent({ a: 1 }, 'x')).toBe('event: x\ndata: {"a":1}\n\n');
    const error = new tollgate.UpstreamClientError(429, Buffer.from('{}'), 'application/json', {});
    expect(error).toBeInstanceOf(tollgate.GatewayError);
    expect(error.status).toBe(429);
  });

  it("'tollgate/testing' has the contract suite and the module loader", () => {
    expect(Object.keys(testing).sort()).toEqual(['loadModuleBackend', 'runBackendContract']);
  });

  it('package.json keeps main, bin and the start script pointing where they did', () => {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.exports['.'].default).toBe('./dist/index.js');
    expect(pkg.exports['./testing'].default).toBe('./dist/testing/index.js');
    expect(pkg.bin.tollgate).toBe('dist/cli/main.js');
    expect(pkg.scripts.start).toBe(
      'MALLOC_TRIM_THRESHOLD_=131072 exec node --max-semi-space-size=16 dist/server.js',
    );
  });
});

describe('vitest stays out of the gateway’s runtime', () => {
  const files = sources(SRC).map((path) => ({
    path: relative(SRC, path),
    text: readFileSync(path, 'utf8'),
  }));

  it('only src/testing/ imports vitest', () => {
    const importers = files.filter((file) => /from '(vitest|@vitest\/[^']+)'/.test(file.text));
    expect(importers.length).toBeGreaterThan(0);
    for (const file of importers) expect(file.path).toMatch(/^testing\//);
  });

  it('nothing outside src/testing/ imports it', () => {
    for (const file of files.filter((entry) => !entry.path.startsWith('testing/'))) {
      expect(file.text, file.path).not.toMatch(/(from|import\()\s*'([^']*\/testing\/|tollgate\/testing)/);
    }
  });
});
