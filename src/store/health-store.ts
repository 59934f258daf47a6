/**
 * Deployment health shared by the gateway fleet: each deployment's circuit breaker and its
 * provider limits (requests and tokens per minute, requests at once). Part of the Store seam
 * (`Store.health`), with a memory and a Redis implementation side by side
 * (memory-health-store.ts, redis-health-store.ts) and one contract suite
 * (test/health-store-contract.test.ts).
 *
 * A deployment is named by a string the router makes unique (see src/routing/route-table.ts);
 * every method takes the caller's clock (`nowMs`), so both stores agree and tests inject time.
 */

/** When a deployment's circuit opens, and for how long. */
export interface CircuitPolicy {
  /** Consecutive failures that open the circuit. */
  failures: number;
  /** A failure ratio over `windowMs` that opens it too, once `minRequests` were seen there. */
  failureRatio: number;
  minRequests: number;
  windowMs: number;
  /**
   * How long an open circuit stays open before one probe is let through; also how long that
   * probe's claim lasts (a prober that vanishes lets another instance probe one cool-down later).
   */
  cooldownMs: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * The answer to "may a request go to this deployment now?". A half-open circuit lets exactly one
 * request through across the fleet: it carries a `probe` token, and its outcome, reported with
 * that token, closes or re-opens the circuit.
 */
export type Admission =
  | { allowed: true; probe?: string }
  | {
      allowed: false;
      /** Until the cool-down ends (open) or the current probe's claim runs out (half-open). */
      retryAfterMs: number;
    };

export interface DeploymentHealth {
  deployment: string;
  /** `half-open` once the cool-down is over, whether or not a probe is under way. */
  state: CircuitState;
  consecutiveFailures: number;
  /** Outcomes counted in the current window (closed circuit only). */
  windowRequests: number;
  windowFailures: number;
  /** Open: until the cool-down ends. */
  retryAfterMs?: number;
  /** Half-open: one instance holds the probe right now. */
  probing: boolean;
}

/** A deployment's own limits at the provider; an absent field is no limit. */
export interface DeploymentLimits {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  maxConcurrent?: number | undefined;
}

export type DeploymentLimitKind = 'requests_per_minute' | 'tokens_per_minute' | 'max_concurrent';

export type CapacityTake =
  /** Counted; give the lease back with `releaseCapacity` when the request ends. */
  | { taken: true; lease: string }
  | {
      taken: false;
      /** The first limit that refused (nothing was counted). */
      limit: DeploymentLimitKind;
      /** For the per-minute limits: until the next minute window. */
      retryAfterMs?: number;
    };

export interface HealthStore {
  /** Whether a request may go to `deployment` now; at most one caller fleet-wide gets a probe. */
  admit(deployment: string, policy: CircuitPolicy, nowMs: number): Promise<Admission>;
  /**
   * The outcome of a request admitted earlier. With its `probe` token it closes (success) or
   * re-opens (failure) a half-open circuit; without one it only counts while the circuit is
   * closed (late answers of requests sent before it opened change nothing). Returns the state after.
   */
  record(
    deployment: string,
    outcome: 'success' | 'failure',
    policy: CircuitPolicy,
    nowMs: number,
    probe?: string | undefined,
  ): Promise<CircuitState>;
  /** The circuits of these deployments as they stand at `nowMs` (admin API, /readyz, metrics). */
  health(deployments: readonly string[], nowMs: number): Promise<DeploymentHealth[]>;

  /**
   * Counts one request of `tokens` (estimated) against the deployment's limits, all or nothing:
   * a deployment at a limit is refused at once (the router skips it; nothing ever waits here).
   * Per-minute limits are counted in the caller's fixed minute windows; a concurrency slot is
   * held until `releaseCapacity`, or `leaseTtlMs` if the process holding it is lost.
   */
  takeCapacity(
    deployment: string,
    limits: DeploymentLimits,
    tokens: number,
    nowMs: number,
    leaseTtlMs: number,
  ): Promise<CapacityTake>;
  /** Frees the lease's concurrency slot; repeats and unknown leases are no-ops. */
  releaseCapacity(deployment: string, lease: string, nowMs: number): Promise<void>;
  /**
   * Corrects the tokens a `takeCapacity` made at `takenAtMs` counted, by `delta` (the tokens the
   * answer used minus the estimate; negative gives back), in that take's minute window and only
   * while it is the current one (a window already over limits nothing). Never below zero.
   */
  adjustTokens(deployment: string, takenAtMs: number, delta: number, nowMs: number): Promise<void>;
}

/** Buckets a circuit's failure-ratio window is counted in (the window slides bucket by bucket). */
export const CIRCUIT_WINDOW_BUCKETS = 10;

export const circuitBucketMs = (policy: CircuitPolicy): number =>
  Math.max(1, Math.ceil(policy.windowMs / CIRCUIT_WINDOW_BUCKETS));

/** True when these window counts (after a failure) open the circuit. */
export function tripsCircuit(
  policy: CircuitPolicy,
  consecutiveFailures: number,
  requests: number,
  failures: number,
): boolean {
  if (consecutiveFailures >= policy.failures) return true;
  return requests >= policy.minRequests && failures / requests >= policy.failureRatio;
}

/** Token counts are whole numbers (Redis counts them with HINCRBY). */
export function checkTokens(tokens: number): void {
  if (!Number.isSafeInteger(tokens) || tokens < 0) throw new TypeError(`invalid token count: ${tokens}`);
}

/** A correction is a whole number too, of either sign. */
export function checkTokenDelta(delta: number): void {
  if (!Number.isSafeInteger(delta)) throw new TypeError(`invalid token correction: ${delta}`);
}
