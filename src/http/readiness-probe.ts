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

/**
 * One check, answered within `timeoutMs` whether or not `run` honours its signal: a store that
 * hangs waits for its own command deadline (5 s on Redis), longer than a load balancer waits.
 */
async function probe(run: (signal: AbortSignal) => Promise<void>, timeoutMs: number): Promise<CheckResult> {
  const controller = new AbortController();
  const checked = run(controller.signal).then(
    (): CheckResult => ({ ok: true }),
    // /readyz is public: only our own messages (which name no address or credential) go out.
    (error: unknown): CheckResult => ({
      ok: false,
      error: error instanceof GatewayError ? error.message : 'unreachable',
    }),
  );
  const result = await within(checked, timeoutMs);
  if (result !== undefined) return result;
  controller.abort();
  // A check that honours its signal says why in its own words once aborted: one turn for that.
  const late = new Promise<undefined>((resolve) => setImmediate(resolve, undefined));
  return (await Promise.race([checked, late])) ?? { ok: false, error: 'unreachable' };
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
    // One `timeoutMs` for the whole report, not per step: a load balancer's check times out as a whole.
    const deadline = Date.now() + this.options.timeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    const backends = this.registry.all();
    const [store, ...results] = await Promise.all([
      probe(() => this.store.ping(), left()),
      ...backends.map((backend) => probe((signal) => backend.checkHealth(signal), left())),
    ]);
    // After the backends' checks: a local server's check is its probe, which decides whether
    // routing skips it, and the models' readiness counts that. Circuits come from the store:
    // when it cannot answer, its own check says so.
    // With no time left the models are not known (nor ready), rather than a timer's tick late.
    const models =
      this.deployments && left() > 0 ? await within(this.deployments.readiness(), left()) : undefined;
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
