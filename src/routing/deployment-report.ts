import type { Backend } from '../backends/backend.js';
import { type AvailabilityView, availabilityOf } from '../backends/local-servers/backend-availability.js';
import type { Config } from '../config/schema.js';
import type { CircuitState, DeploymentLimits, HealthStore } from '../store/health-store.js';
import type { InFlightCounter } from './in-flight-counter.js';
import type { LatencyTracker } from './latency-tracker.js';
import { type ModelRoute, RouteTable } from './route-table.js';

/** One deployment as `GET /admin/deployments`, the CLI and metrics show it. */
export interface DeploymentView {
  object: 'deployment';
  /** `<model>/<name>`: what names its circuit and limit counters in the store. */
  id: string;
  /** The `models` entry: a public name, `*` or `prefix/*`. */
  model: string;
  /** Its name in `x-tollgate-backend` and the request log. */
  name: string;
  backend: string;
  /** What the upstream is asked for; null on a wildcard route (the asked name goes through). */
  upstream_model: string | null;
  weight: number;
  priority: number;
  circuit: {
    /** False: the model's circuit breaker is off and the state is always `closed`. */
    enabled: boolean;
    state: CircuitState;
    consecutive_failures: number;
    window_requests: number;
    window_failures: number;
    /** Open: until its cool-down ends and one probe is let through. */
    retry_after_ms: number | null;
    /** Half-open: an instance is probing it now. */
    probing: boolean;
  };
  /** Requests to it under way on the instance that answered (per instance, not fleet-wide). */
  in_flight: number;
  /** Its time to first byte as this instance has measured it (EWMA, per instance); null before any. */
  latency_ms: number | null;
  limits: {
    requests_per_minute: number | null;
    tokens_per_minute: number | null;
    max_concurrent: number | null;
  };
  /**
   * For a local server (what its last probe found), and for another backend only while it says it
   * cannot take requests now (a model still loading): routing skips the deployment while
   * `unavailable`, whatever its circuit says.
   */
  availability?: AvailabilityView;
}

/**
 * Whether a model can take a request now: one of its deployments, or of a fallback's, is neither
 * open nor on a backend known to be unavailable.
 */
export interface ModelReadiness {
  model: string;
  ready: boolean;
  /** Its own deployments that are not open (nor on an unavailable backend). */
  usable: number;
  deployments: number;
  /** The fallback that makes it ready when none of its own deployments can. */
  via_fallback?: string;
}

/**
 * Reads the state of every configured deployment: circuits from the store (shared by the fleet),
 * in-flight counts and latency from this instance's own counters (src/pipeline/router.ts).
 */
export class DeploymentReport {
  private readonly table: RouteTable;
  private readonly routes: ModelRoute[];

  constructor(
    models: Config['models'],
    private readonly health: HealthStore,
    private readonly counters: { inFlight: InFlightCounter; latency: LatencyTracker },
    private readonly clock: () => number,
    /** The backends by name, for their availability; without it none is shown. */
    private readonly backends?: { get(name: string): Backend },
  ) {
    // The same normalisation the router does, so the ids match the store's.
    this.table = new RouteTable(models);
    this.routes = this.table.routes();
  }

  async list(): Promise<DeploymentView[]> {
    const ids = this.routes.flatMap((route) => route.deployments.map((deployment) => deployment.id));
    const states = new Map(
      (await this.health.health(ids, this.clock())).map((state) => [state.deployment, state]),
    );
    return this.routes.flatMap((route) =>
      route.deployments.map((deployment): DeploymentView => {
        const state = states.get(deployment.id);
        const latency = this.counters.latency.get(deployment.id);
        return {
          object: 'deployment',
          id: deployment.id,
          model: route.route,
          name: deployment.name,
          backend: deployment.backend,
          upstream_model: deployment.model ?? null,
          weight: deployment.weight,
          priority: deployment.priority,
          circuit: {
            enabled: route.circuit !== undefined,
            state: state?.state ?? 'closed',
            consecutive_failures: state?.consecutiveFailures ?? 0,
            window_requests: state?.windowRequests ?? 0,
            window_failures: state?.windowFailures ?? 0,
            retry_after_ms: state?.state === 'open' ? (state.retryAfterMs ?? 0) : null,
            probing: state?.probing ?? false,
          },
          in_flight: this.counters.inFlight.get(deployment.id),
          latency_ms: latency === undefined ? null : Math.round(latency * 100) / 100,
          limits: publicLimits(deployment.limits),
          ...this.availability(deployment.backend),
        };
      }),
    );
  }

  private availability(backend: string): { availability?: AvailabilityView } {
    const found = this.backends && availabilityOf(this.backends.get(backend));
    return found ? { availability: found } : {};
  }

  /**
   * Every configured model (wildcards included) and whether it can serve now. Only the direct
   * fallbacks count: a request's plan tries a model's own fallbacks, never theirs.
   */
  async readiness(): Promise<ModelReadiness[]> {
    const views = await this.list();
    const usable = new Map<string, number>();
    for (const view of views) {
      if (view.circuit.state !== 'open' && view.availability?.state !== 'unavailable')
        usable.set(view.model, (usable.get(view.model) ?? 0) + 1);
    }
    return this.routes.map((route): ModelReadiness => {
      const own = usable.get(route.route) ?? 0;
      const base = { model: route.route, usable: own, deployments: route.deployments.length };
      if (own > 0) return { ...base, ready: true };
      // A fallback may be served by a wildcard route: count that route's deployments.
      const fallback = route.fallbacks.find((name) => {
        const match = this.table.match(name);
        return match !== undefined && (usable.get(match.route.route) ?? 0) > 0;
      });
      return fallback ? { ...base, ready: true, via_fallback: fallback } : { ...base, ready: false };
    });
  }
}

function publicLimits(limits: DeploymentLimits): DeploymentView['limits'] {
  return {
    requests_per_minute: limits.requestsPerMinute ?? null,
    tokens_per_minute: limits.tokensPerMinute ?? null,
    max_concurrent: limits.maxConcurrent ?? null,
  };
}
