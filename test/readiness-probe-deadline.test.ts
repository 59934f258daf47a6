import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BackendRegistry } from '../src/backends/registry.js';
import { ReadinessProbe, type ReadinessReport } from '../src/http/readiness-probe.js';
import type { DeploymentReport } from '../src/routing/deployment-report.js';
import type { Store } from '../src/store/store.js';

/**
 * /readyz answers within `readiness.timeoutMs` as a whole, whatever hangs: a load balancer that
 * waits 2 s must not see 7 s because the store only gives up at its own command deadline. The
 * clock is faked (timers and Date), so nothing here depends on how fast the machine is.
 */
const TIMEOUT_MS = 2_000;
const never = () => new Promise<never>(() => {});

afterEach(() => {
  vi.useRealTimers();
});

/** A probe over a store, one backend and the deployments' report, each answering as told. */
function probeWith(parts: {
  ping: () => Promise<void>;
  health: () => Promise<void>;
  models: () => Promise<[]>;
}) {
  const store = { kind: 'redis', ping: parts.ping } as unknown as Store;
  const backend = { name: 'up', checkHealth: parts.health };
  const registry = { all: () => [backend] } as unknown as BackendRegistry;
  const deployments = { readiness: parts.models } as unknown as DeploymentReport;
  return new ReadinessProbe(
    store,
    registry,
    { requireAllBackends: false, cacheMs: 0, timeoutMs: TIMEOUT_MS },
    deployments,
  );
}

/** The report, and whether it was there once `ms` of fake time had passed. */
async function reportAfter(probe: ReadinessProbe, ms: number) {
  let report: ReadinessReport | undefined;
  void probe.check().then((value) => {
    report = value;
  });
  await vi.advanceTimersByTimeAsync(ms);
  // A check past its time gets one turn of the event loop (not faked) to say why in its own words.
  await new Promise((resolve) => setImmediate(resolve));
  return report;
}

describe('/readyz within readiness.timeoutMs', () => {
  it('answers not ready once the timeout has passed, though the store and a backend never answer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const probe = probeWith({ ping: never, health: never, models: never });
    const report = await reportAfter(probe, TIMEOUT_MS);
    expect(report).toMatchObject({ ready: false, store: { ok: false }, backends: { up: { ok: false } } });
  });

  it('gives the models what is left of the timeout, not a timeout of their own after the others', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const slow = () => new Promise<void>((resolve) => setTimeout(resolve, TIMEOUT_MS - 10));
    const probe = probeWith({ ping: slow, health: slow, models: never });
    const report = await reportAfter(probe, TIMEOUT_MS);
    expect(report).toMatchObject({ ready: false, store: { ok: true }, backends: { up: { ok: true } } });
    expect(report?.models).toBeUndefined();
  });

  it('is ready when everything answers in time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const probe = probeWith({ ping: async () => {}, health: async () => {}, models: async () => [] });
    expect(await reportAfter(probe, 0)).toMatchObject({
      ready: true,
      store: { ok: true },
      backends: { up: { ok: true } },
    });
  });
});
