import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * The Docker files cannot be run here (no engine), so what must hold between them is read from
 * the files: compose must wait for the gateway's drain before it kills it.
 */

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

/** What the gateway takes after shutdownGraceMs to settle and record cut streams (src/serve.ts). */
const AFTER_GRACE_S = 5;

function seconds(duration: string): number {
  const match = /^(\d+)(s|m)$/.exec(duration);
  if (!match) throw new Error(`unexpected duration ${duration}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

describe('Docker files', () => {
  it('compose waits longer than the drain and the settling after it before SIGKILL', () => {
    const compose = parse(read('docker-compose.yml')) as {
      services: { tollgate: { stop_grace_period: string; volumes: string[] } };
    };
    const mounted = compose.services.tollgate.volumes.find((v) =>
      v.endsWith(':/etc/tollgate/tollgate.yaml:ro'),
    );
    expect(mounted).toBeDefined();
    const config = parse(read(String(mounted).split(':')[0]?.replace(/^\.\//, '') ?? '')) as {
      server: { shutdownGraceMs: number };
    };
    expect(seconds(compose.services.tollgate.stop_grace_period)).toBeGreaterThan(
      config.server.shutdownGraceMs / 1000 + AFTER_GRACE_S,
    );
  });

  it('the image listens on the port it exposes and checks health there', () => {
    const dockerfile = read('Dockerfile');
    const port = /PORT=(\d+)/.exec(dockerfile)?.[1];
    expect(dockerfile).toContain(`EXPOSE ${port}`);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*process\.env\.PORT\|\|8080\)\+'\/healthz'/);
  });
});
