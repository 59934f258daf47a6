import { randomUUID } from 'node:crypto';
import { nextWindowInMs, tpmWindow } from '../quota/quota-types.js';
import {
  type Admission,
  type CapacityTake,
  CIRCUIT_WINDOW_BUCKETS,
  type CircuitPolicy,
  type CircuitState,
  checkTokenDelta,
  checkTokens,
  circuitBucketMs,
  type DeploymentHealth,
  type DeploymentLimits,
  type HealthStore,
  tripsCircuit,
} from './health-store.js';

interface Circuit {
  state: 'closed' | 'open' | 'half-open';
  consecutiveFailures: number;
  /** Bucket index -> [successes, failures] (closed circuit only). */
  buckets: Map<number, [number, number]>;
  bucketMs: number;
  /** Open: until when; half-open: when the probe's claim runs out. */
  until: number;
  probe?: string | undefined;
}

interface Capacity {
  window: number;
  requests: number;
  tokens: number;
  /** Lease id -> when it stops counting. */
  leases: Map<string, number>;
}

const closed = (): Circuit => ({
  state: 'closed',
  consecutiveFailures: 0,
  buckets: new Map(),
  bucketMs: 1,
  until: 0,
});

/**
 * Deployment health in this process, mirroring redis-health-store.ts step by step so both
 * answer the contract alike. Each method runs synchronously to completion, which is what makes
 * it atomic here; an instance without Redis is its own whole fleet.
 */
export class MemoryHealthStore implements HealthStore {
  private readonly circuits = new Map<string, Circuit>();
  private readonly capacity = new Map<string, Capacity>();

  async admit(deployment: string, policy: CircuitPolicy, nowMs: number): Promise<Admission> {
    const circuit = this.circuits.get(deployment);
    if (!circuit || circuit.state === 'closed') return { allowed: true };
    if (nowMs < circuit.until) return { allowed: false, retryAfterMs: circuit.until - nowMs };
    // The cool-down (or a lost probe's claim) is over: this caller probes, the others wait.
    const probe = randomUUID();
    circuit.state = 'half-open';
    circuit.probe = probe;
    circuit.until = nowMs + policy.cooldownMs;
    return { allowed: true, probe };
  }

  async record(
    deployment: string,
    outcome: 'success' | 'failure',
    policy: CircuitPolicy,
    nowMs: number,
    probe?: string,
  ): Promise<CircuitState> {
    const circuit = this.circuits.get(deployment) ?? closed();
    if (probe !== undefined) {
      if (circuit.state !== 'half-open' || circuit.probe !== probe) return this.stateOf(circuit, nowMs);
      if (outcome === 'success') {
        this.circuits.delete(deployment);
        return 'closed';
      }
      this.circuits.set(deployment, this.opened(policy, nowMs));
      return 'open';
    }
    if (circuit.state !== 'closed') return this.stateOf(circuit, nowMs);
    const bucketMs = circuitBucketMs(policy);
    if (circuit.bucketMs !== bucketMs) {
      circuit.buckets.clear();
      circuit.bucketMs = bucketMs;
    }
    const bucket = Math.floor(nowMs / bucketMs);
    const counts = circuit.buckets.get(bucket) ?? [0, 0];
    circuit.buckets.set(bucket, counts);
    if (outcome === 'success') {
      counts[0] += 1;
      circuit.consecutiveFailures = 0;
    } else {
      counts[1] += 1;
      circuit.consecutiveFailures += 1;
    }
    const [requests, failures] = this.windowCounts(circuit, bucket);
    if (outcome === 'failure' && tripsCircuit(policy, circuit.consecutiveFailures, requests, failures)) {
      this.circuits.set(deployment, this.opened(policy, nowMs));
      return 'open';
    }
    this.circuits.set(deployment, circuit);
    return 'closed';
  }

  async health(deployments: readonly string[], nowMs: number): Promise<DeploymentHealth[]> {
    return deployments.map((deployment) => {
      const circuit = this.circuits.get(deployment) ?? closed();
      const state = this.stateOf(circuit, nowMs);
      const [windowRequests, windowFailures] =
        state === 'closed' ? this.windowCounts(circuit, Math.floor(nowMs / circuit.bucketMs)) : [0, 0];
      return {
        deployment,
        state,
        consecutiveFailures: circuit.consecutiveFailures,
        windowRequests,
        windowFailures,
        ...(state === 'open' ? { retryAfterMs: circuit.until - nowMs } : {}),
        probing: circuit.state === 'half-open' && nowMs < circuit.until,
      };
    });
  }

  async takeCapacity(
    deployment: string,
    limits: DeploymentLimits,
    tokens: number,
    nowMs: number,
    leaseTtlMs: number,
  ): Promise<CapacityTake> {
    checkTokens(tokens);
    const window = tpmWindow(nowMs);
    let entry = this.capacity.get(deployment);
    if (!entry) {
      entry = { window, requests: 0, tokens: 0, leases: new Map() };
      this.capacity.set(deployment, entry);
    }
    if (entry.window !== window) {
      entry.window = window;
      entry.requests = 0;
      entry.tokens = 0;
    }
    for (const [lease, expiresAt] of entry.leases) if (expiresAt <= nowMs) entry.leases.delete(lease);
    // Same order as the Redis script: concurrency, then requests, then tokens.
    if (limits.maxConcurrent !== undefined && entry.leases.size + 1 > limits.maxConcurrent)
      return { taken: false, limit: 'max_concurrent' };
    if (limits.requestsPerMinute !== undefined && entry.requests + 1 > limits.requestsPerMinute)
      return { taken: false, limit: 'requests_per_minute', retryAfterMs: nextWindowInMs(nowMs) };
    if (limits.tokensPerMinute !== undefined && entry.tokens + tokens > limits.tokensPerMinute)
      return { taken: false, limit: 'tokens_per_minute', retryAfterMs: nextWindowInMs(nowMs) };
    entry.requests += 1;
    entry.tokens += tokens;
    const lease = randomUUID();
    if (limits.maxConcurrent !== undefined) entry.leases.set(lease, nowMs + leaseTtlMs);
    return { taken: true, lease };
  }

  async releaseCapacity(deployment: string, lease: string, _nowMs: number): Promise<void> {
    this.capacity.get(deployment)?.leases.delete(lease);
  }

  async adjustTokens(deployment: string, takenAtMs: number, delta: number, nowMs: number): Promise<void> {
    checkTokenDelta(delta);
    const window = tpmWindow(takenAtMs);
    const entry = this.capacity.get(deployment);
    if (!entry || entry.window !== window || tpmWindow(nowMs) !== window) return;
    entry.tokens = Math.max(0, entry.tokens + delta);
  }

  private opened(policy: CircuitPolicy, nowMs: number): Circuit {
    return { ...closed(), state: 'open', until: nowMs + policy.cooldownMs };
  }

  private stateOf(circuit: Circuit, nowMs: number): CircuitState {
    if (circuit.state === 'open' && nowMs >= circuit.until) return 'half-open';
    return circuit.state;
  }

  /** [requests, failures] over the buckets still in the window; older buckets are dropped. */
  private windowCounts(circuit: Circuit, bucket: number): [number, number] {
    let requests = 0;
    let failures = 0;
    for (const [index, [s, f]] of circuit.buckets) {
      if (index <= bucket - CIRCUIT_WINDOW_BUCKETS) {
        circuit.buckets.delete(index);
        continue;
      }
      requests += s + f;
      failures += f;
    }
    return [requests, failures];
  }
}
