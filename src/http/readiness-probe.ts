import type { BackendRegistry } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { DeploymentReport, ModelReadiness } from '../routing/deployment-report.js';
import type { Store } from '../store/store.js';

export interface CheckResult {
  ok: boolean;
  error?: string;
  /** A backend that says it cannot take requests now (a local server found down): until when. */
  retry_after_ms?: number;
}

export interface ReadinessReport {
  ready: boolean;
  store: CheckResult & { kind: string };
  backends: Record<string, CheckResult>;
  /**
   * Each configured model: ready while one of its deployments (or of a fallback's) has a circuit
   * that is not open. Absent (and not ready) when the store did not tell the circuits in time.
   */
  models?: ModelReadiness[];
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

/** The promise's value, or undefined if it fails or takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined);
  });
  try {
    return await Promise.race([promise.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks the store, every backend and every model's deployments, cached briefly so a load
 * balancer polling many instances does not turn into traffic on the upstream providers.
 */
export class ReadinessProbe {
  private cached: { at: number; report: Promise<ReadinessReport> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly registry: BackendRegistry,
    private readonly options: Config['readiness'],
    private readonly deployments?: DeploymentReport,
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
    // After the backends' checks: a local server's check is its probe, which decides whether
    // routing skips it, and the models' readiness counts that. Circuits come from the store:
    // when it cannot answer, its own check says so.
    const models = this.deployments ? await within(this.deployments.readiness(), timeout) : undefined;
    const byName: Record<string, CheckResult> = {};
    backends.forEach((backend, i) => {
      const result = results[i] ?? { ok: false };
      const waitMs = backend.unavailableForMs?.();
      byName[backend.name] = waitMs === undefined ? result : { ...result, ok: false, retry_after_ms: waitMs };
    });
    const reachable = Object.values(byName).filter((result) => result.ok).length;
    const backendsOk = this.options.requireAllBackends ? reachable === results.length : reachable > 0;
    const modelsOk = models?.every((model) => model.ready) ?? this.deployments === undefined;
    return {
      ready: (store?.ok ?? false) && backendsOk && modelsOk,
      store: { kind: this.store.kind, ...(store ?? { ok: false }) },
      backends: byName,
      // Only the models that are not ready, by name: this endpoint needs no key, and the full
      // per-model picture (which models exist, their deployments) is the admin API's.
      ...(models ? { models: models.filter((model) => !model.ready) } : {}),
    };
  }
}
