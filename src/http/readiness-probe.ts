import type { BackendRegistry } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Store } from '../store/store.js';

export interface CheckResult {
  ok: boolean;
  error?: string;
}

export interface ReadinessReport {
  ready: boolean;
  store: CheckResult & { kind: string };
  backends: Record<string, CheckResult>;
}

async function probe(run: (signal: AbortSignal) => Promise<void>, timeoutMs: number): Promise<CheckResult> {
  try {
    await run(AbortSignal.timeout(timeoutMs));
    return { ok: true };
  } catch (error) {
    // /readyz is public: only our own messages (which name no address or credential) go out.
    return { ok: false, error: error instanceof GatewayError ? error.message : 'unreachable' };
  }
}

/**
 * Checks the store and every backend, cached briefly so a load balancer polling many
 * instances does not turn into traffic on the upstream providers.
 */
export class ReadinessProbe {
  private cached: { at: number; report: Promise<ReadinessReport> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly registry: BackendRegistry,
    private readonly options: Config['readiness'],
  ) {}

  check(): Promise<ReadinessReport> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.options.cacheMs) return this.cached.report;
    const report = this.run();
    this.cached = { at: now, report };
    return report;
  }

  private async run(): Promise<ReadinessReport> {
    const timeout = this.options.timeoutMs;
    const backends = this.registry.all();
    const [store, ...results] = await Promise.all([
      probe(() => this.store.ping(), timeout),
      ...backends.map((backend) => probe((signal) => backend.checkHealth(signal), timeout)),
    ]);
    const byName: Record<string, CheckResult> = {};
    backends.forEach((backend, i) => {
      byName[backend.name] = results[i] ?? { ok: false };
    });
    const reachable = results.filter((result) => result.ok).length;
    const backendsOk = this.options.requireAllBackends ? reachable === results.length : reachable > 0;
    return {
      ready: (store?.ok ?? false) && backendsOk,
      store: { kind: this.store.kind, ...(store ?? { ok: false }) },
      backends: byName,
    };
  }
}
