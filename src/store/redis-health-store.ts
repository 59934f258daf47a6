import { randomUUID } from 'node:crypto';
import { MINUTE_MS, nextWindowInMs, tpmWindow } from '../quota/quota-types.js';
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
  type DeploymentLimitKind,
  type DeploymentLimits,
  type HealthStore,
} from './health-store.js';
import { loadLua } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';

/**
 * Key layout. Everything of one deployment shares the hash tag `{h:<deployment>}` (URI-encoded,
 * so a brace in a model name cannot end the tag early): on a Cluster a deployment's state is one
 * slot, and each transition is one script there, while deployments spread over the nodes.
 *   tg:{h:<d>}:circuit        hash: st = c | o | h (closed, open, half-open), u = open until /
 *                             probe claim until (callers' clock), p = the probe's token,
 *                             cf = consecutive failures, bm = bucket ms, s:<bucket> / f:<bucket>
 *                             = successes / failures in that bucket of the window
 *   tg:{h:<d>}:cap:<minute>   hash: r = requests, t = tokens counted in that minute window
 *   tg:{h:<d>}:leases         zset: concurrency leases by when they stop counting
 */
const prefix = (deployment: string) => `tg:{h:${encodeURIComponent(deployment)}}:`;
const H = {
  circuit: (p: string) => `${p}circuit`,
  capacity: (p: string, nowMs: number) => `${p}cap:${tpmWindow(nowMs)}`,
  leases: (p: string) => `${p}leases`,
};

/** Real-time lifetime of a minute window's counters (the callers' clock may lag a little). */
const CAPACITY_KEEP_MS = 2 * MINUTE_MS;

const ADMIT = loadLua('health-circuit-prelude', 'health-admit');
const RECORD = loadLua('health-circuit-prelude', 'health-record');
const TAKE_CAPACITY = loadLua('health-take-capacity');
const ADJUST_TOKENS = loadLua('health-adjust-tokens');

const optional = (value: number | undefined) => (value === undefined ? '' : value);

/**
 * Deployment health in Redis, shared by every gateway instance, so a fleet agrees on which
 * deployment is down and counts one provider limit together. Uses the RedisStore's connection
 * and its readiness check, so an outage fails fast with StoreUnavailableError.
 */
export class RedisHealthStore implements HealthStore {
  constructor(private readonly connection: RedisConnection) {
    failClosedOnOutage(this, connection.client);
  }

  async admit(deployment: string, policy: CircuitPolicy, nowMs: number): Promise<Admission> {
    const [allowed, detail] = (await this.connection.run(
      ADMIT,
      [H.circuit(prefix(deployment))],
      [nowMs, policy.cooldownMs, randomUUID(), keepMs(policy)],
    )) as [number, string?];
    if (allowed === 1) return detail === undefined ? { allowed: true } : { allowed: true, probe: detail };
    return { allowed: false, retryAfterMs: Number(detail) };
  }

  async record(
    deployment: string,
    outcome: 'success' | 'failure',
    policy: CircuitPolicy,
    nowMs: number,
    probe?: string,
  ): Promise<CircuitState> {
    return (await this.connection.run(
      RECORD,
      [H.circuit(prefix(deployment))],
      [
        nowMs,
        policy.cooldownMs,
        outcome === 'success' ? 's' : 'f',
        probe ?? '',
        policy.failures,
        String(policy.failureRatio),
        policy.minRequests,
        circuitBucketMs(policy),
        CIRCUIT_WINDOW_BUCKETS,
        keepMs(policy),
      ],
    )) as CircuitState;
  }

  async health(deployments: readonly string[], nowMs: number): Promise<DeploymentHealth[]> {
    await this.connection.ready();
    const all = await Promise.all(
      deployments.map((deployment) => this.connection.client.hgetall(H.circuit(prefix(deployment)))),
    );
    return deployments.map((deployment, i) => healthOf(deployment, all[i] ?? {}, nowMs));
  }

  async takeCapacity(
    deployment: string,
    limits: DeploymentLimits,
    tokens: number,
    nowMs: number,
    leaseTtlMs: number,
  ): Promise<CapacityTake> {
    checkTokens(tokens);
    const p = prefix(deployment);
    const lease = randomUUID();
    const [taken, limit] = (await this.connection.run(
      TAKE_CAPACITY,
      [H.capacity(p, nowMs), H.leases(p)],
      [
        nowMs,
        optional(limits.maxConcurrent),
        optional(limits.requestsPerMinute),
        optional(limits.tokensPerMinute),
        tokens,
        lease,
        leaseTtlMs,
        CAPACITY_KEEP_MS,
      ],
    )) as [number, string?];
    if (taken === 1) return { taken: true, lease };
    const kind = limit as DeploymentLimitKind;
    return kind === 'max_concurrent'
      ? { taken: false, limit: kind }
      : { taken: false, limit: kind, retryAfterMs: nextWindowInMs(nowMs) };
  }

  async releaseCapacity(deployment: string, lease: string, _nowMs: number): Promise<void> {
    await this.connection.ready();
    await this.connection.client.zrem(H.leases(prefix(deployment)), lease);
  }

  async adjustTokens(deployment: string, takenAtMs: number, delta: number, nowMs: number): Promise<void> {
    checkTokenDelta(delta);
    if (delta === 0 || tpmWindow(takenAtMs) !== tpmWindow(nowMs)) return;
    await this.connection.run(ADJUST_TOKENS, [H.capacity(prefix(deployment), takenAtMs)], [delta]);
  }
}

/**
 * How long circuit state outlives its last change, in real time: past the window and the
 * cool-down an absent key means the same as a fresh closed circuit.
 */
const keepMs = (policy: CircuitPolicy) => 2 * (policy.windowMs + policy.cooldownMs);

/** The circuit as the scripts left it, read at `nowMs` (the same reading as the memory store). */
function healthOf(deployment: string, fields: Record<string, string>, nowMs: number): DeploymentHealth {
  const st = fields.st ?? 'c';
  const until = Number(fields.u ?? 0);
  const consecutiveFailures = Number(fields.cf ?? 0);
  if (st === 'o' && nowMs < until)
    return {
      deployment,
      state: 'open',
      consecutiveFailures,
      windowRequests: 0,
      windowFailures: 0,
      retryAfterMs: until - nowMs,
      probing: false,
    };
  if (st !== 'c')
    return {
      deployment,
      state: 'half-open',
      consecutiveFailures,
      windowRequests: 0,
      windowFailures: 0,
      probing: st === 'h' && nowMs < until,
    };
  const bucket = Math.floor(nowMs / Number(fields.bm ?? 1));
  let windowRequests = 0;
  let windowFailures = 0;
  for (const [field, value] of Object.entries(fields)) {
    const match = /^([sf]):(\d+)$/.exec(field);
    if (!match || Number(match[2]) <= bucket - CIRCUIT_WINDOW_BUCKETS) continue;
    windowRequests += Number(value);
    if (match[1] === 'f') windowFailures += Number(value);
  }
  return { deployment, state: 'closed', consecutiveFailures, windowRequests, windowFailures, probing: false };
}
