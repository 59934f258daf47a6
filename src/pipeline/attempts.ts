import { retryAfterMs } from '../backends/openai-compatible/key-pool.js';
import { ClientAbortedError } from '../backends/transport-failure.js';
import {
  BackendBusyError,
  GatewayError,
  ServiceUnavailableError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../errors.js';
import { targetedFallbackKind } from '../routing/targeted-fallback.js';
import type { HealthStore } from '../store/health-store.js';
import type { Deployment, ModelRouter, RoutePlan } from './router.js';

/** One attempt as the request log shows it. */
export interface AttemptRecord {
  deployment: string;
  /** The upstream's status, the gateway's error status, or what kept the candidate out. */
  status: number | 'circuit-open' | 'at-limit' | 'unavailable' | 'aborted';
  duration_ms: number;
}

export interface AttemptsDeps {
  health: HealthStore;
  router: ModelRouter;
  now: () => number;
  /** A concurrency slot a lost process never gives back frees itself after this long. */
  leaseTtlMs: number;
  random?: () => number;
}

/** What a successful attempt hands back: the deployment that answered and how to end its hold. */
export interface Answered<T> {
  value: T;
  deployment: Deployment;
  /** The answer has ended (stream end included): frees its concurrency slot and in-flight count. */
  end: () => void;
  /**
   * The tokens the answer used: the deployment's tokens-per-minute count, taken with the
   * estimate, is corrected to them. Never rejects (a lost correction only leaves the estimate).
   */
  used: (tokens: number) => Promise<void>;
}

interface CandidateState {
  deployment: Deployment;
  group: RoutePlan['groups'][number];
  tries: number;
  /** Not retried again for this request (circuit open, at a limit, retry-after too long). */
  out: boolean;
  /** Earliest performance.now() at which it may be tried again. */
  notBefore: number;
}

/**
 * ⑤ attempts: sends one request to the deployments of a route plan, in order, until one
 * answers. Runs only before the client has seen a byte (`run` covers the call and the read-ahead);
 * retries connect errors, timeouts and 408/409/429/5xx, never another 4xx. A fresh deployment
 * is preferred to one already tried; one already tried waits its backoff (exponential with
 * jitter, or the upstream's retry-after up to `maxRetryAfterMs`). At most `retry.attempts`
 * attempts, none started after `retry.deadlineMs`. Open circuits and deployments at their
 * limits are skipped, never waited on. A 400 refusing the request for its length or by a content
 * policy moves it, once, to the model's targeted fallbacks (src/routing/targeted-fallback.ts).
 */
export class Attempts {
  readonly log: AttemptRecord[] = [];
  /** The last deployment an attempt went to, answered or not. */
  lastTried: Deployment | undefined;

  constructor(
    private readonly deps: AttemptsDeps,
    private readonly plan: RoutePlan,
    /**
     * Estimated tokens of the request, counted against deployments' tokens-per-minute limits:
     * asked only of a deployment that has one (counting a prompt is not free).
     */
    private readonly estimateTokens: () => number,
    private readonly signal: AbortSignal,
  ) {}

  private estimated: number | undefined;

  private get tokens(): number {
    this.estimated ??= this.estimateTokens();
    return this.estimated;
  }

  /**
   * `attempt` must send its upstream request with the signal it is given: it aborts when the
   * client leaves, or when `retry.attemptTimeoutMs` passes before the attempt is ready to answer.
   */
  async run<T>(attempt: (deployment: Deployment, signal: AbortSignal) => Promise<T>): Promise<Answered<T>> {
    const { retry } = this.plan.route;
    // Waits and the deadline on the monotonic clock; the store's clock (`deps.now`) may be moved.
    const now = () => performance.now();
    const deadline = now() + retry.deadlineMs;
    let candidates = candidatesOf(this.plan.groups);
    const { oncePerCandidate } = this.plan.route;
    let allowed = oncePerCandidate ? candidates.length : retry.attempts;
    /** Once a targeted fallback took over, its own refusals are the answer (no chains). */
    let redirected = false;
    let lastError: unknown;
    /** The soonest a skipped (open or full) deployment takes requests again. */
    let unavailableForMs: number | undefined;
    while (this.count < allowed) {
      const next = this.next(candidates);
      if (!next) break;
      const wait = next.notBefore - now();
      if (wait > 0) {
        if (now() + wait > deadline) break;
        await sleep(wait, this.signal);
      }
      if (now() > deadline) break;
      if (this.signal.aborted) throw new ClientAbortedError();
      const gate = await this.admit(next);
      if (!gate.admitted) {
        next.out = true;
        unavailableForMs = Math.min(unavailableForMs ?? gate.retryAfterMs, gate.retryAfterMs);
        continue;
      }
      next.tries += 1;
      this.lastTried = next.deployment;
      const started = performance.now();
      const stopCounting = this.deps.router.inFlight.start(next.deployment.id);
      const end = () => {
        stopCounting();
        if (gate.lease) void this.release(next.deployment, gate.lease);
      };
      const timeoutMs = retry.attemptTimeoutMs;
      // Only when the deployment has an attempt timeout: most requests need no second signal.
      const timer = timeoutMs === undefined ? undefined : new AbortController();
      const clock = timer && setTimeout(() => timer.abort(), timeoutMs);
      try {
        const value = await attempt(
          next.deployment,
          timer === undefined ? this.signal : AbortSignal.any([this.signal, timer.signal]),
        );
        const ms = performance.now() - started;
        this.note(next.deployment, 200, ms);
        this.deps.router.latency.observe(next.deployment.id, ms);
        await this.record(next, 'success', gate.probe);
        const used = (tokens: number) => this.correctTokens(next.deployment, gate, tokens);
        return { value, deployment: next.deployment, end, used };
      } catch (thrown) {
        end();
        const ms = performance.now() - started;
        // Abandoned for its slowness: a timeout like any other, whatever the transport said.
        const error =
          timer?.signal.aborted && !this.signal.aborted
            ? new UpstreamTimeoutError(
                `Deployment '${next.deployment.name}' was not ready to answer within ${timeoutMs} ms.`,
              )
            : thrown;
        if (error instanceof ClientAbortedError || this.signal.aborted) {
          this.note(next.deployment, 'aborted', ms);
          // A probe cut short says nothing about the deployment; its claim runs out by itself.
          throw error;
        }
        this.note(next.deployment, error instanceof GatewayError ? error.status : 500, ms);
        const retryable = isRetryable(error);
        // A 4xx that is the client's fault says the deployment is up.
        await this.record(next, retryable ? 'failure' : 'success', gate.probe);
        if (!retryable) {
          const kind = redirected ? undefined : targetedFallbackKind(error);
          const instead = kind ? this.plan.targeted[kind] : [];
          if (instead.length === 0) throw error;
          // Not a retry: no deployment of this model (nor its fallbacks) can take this request,
          // so the targeted models replace them all and get the attempts a request starts with.
          redirected = true;
          candidates = candidatesOf(instead);
          allowed = this.count + (oncePerCandidate ? candidates.length : retry.attempts);
          // Relayed as it came if none of them can be reached.
          lastError = error;
          continue;
        }
        lastError = error;
        this.backOff(next, error);
      } finally {
        // Ready (or failed) in time: the stream that follows is bounded by the backend's timeouts.
        clearTimeout(clock);
      }
    }
    if (lastError !== undefined) throw lastError;
    throw new UpstreamUnavailableError(this.plan.groups[0]?.model ?? '', unavailableForMs ?? 1_000);
  }

  /** Untried candidates first, in plan order; then the tried one that may go again soonest. */
  private next(candidates: CandidateState[]): CandidateState | undefined {
    const fresh = candidates.find((candidate) => !candidate.out && candidate.tries === 0);
    if (fresh || this.plan.route.oncePerCandidate) return fresh;
    let soonest: CandidateState | undefined;
    for (const candidate of candidates) {
      if (!candidate.out && (!soonest || candidate.notBefore < soonest.notBefore)) soonest = candidate;
    }
    return soonest;
  }

  private backOff(candidate: CandidateState, error: unknown): void {
    const { retry } = this.plan.route;
    // A 429, and an overloaded upstream's 503/529, may say when to come back.
    const asked = error instanceof GatewayError ? retryAfterMs(error.headers) : undefined;
    if (asked !== undefined && asked > retry.maxRetryAfterMs) {
      // Waiting that long is not worth it for this request: another deployment, or the failure.
      candidate.out = true;
      return;
    }
    const exponential = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** (candidate.tries - 1));
    // Jitter in [half, whole] so a fleet's retries spread out but never come sooner than half.
    const jittered = exponential * (0.5 + 0.5 * (this.deps.random ?? Math.random)());
    candidate.notBefore = performance.now() + Math.max(jittered, asked ?? 0);
  }

  private async admit(
    candidate: CandidateState,
  ): Promise<
    | { admitted: true; probe?: string; lease?: string; takenAt?: number }
    | { admitted: false; retryAfterMs: number }
  > {
    const { deployment, group } = candidate;
    const { health, now } = this.deps;
    const downForMs = deployment.backend.unavailableForMs?.();
    if (downForMs !== undefined) {
      this.note(deployment, 'unavailable', 0);
      return { admitted: false, retryAfterMs: downForMs };
    }
    let probe: string | undefined;
    if (group.route.circuit) {
      const admission = await health.admit(deployment.id, group.route.circuit, now());
      if (!admission.allowed) {
        this.note(deployment, 'circuit-open', 0);
        return { admitted: false, retryAfterMs: admission.retryAfterMs };
      }
      probe = admission.probe;
    }
    const { limits } = deployment;
    if (
      limits.maxConcurrent === undefined &&
      limits.requestsPerMinute === undefined &&
      limits.tokensPerMinute === undefined
    )
      return { admitted: true, ...(probe ? { probe } : {}) };
    const takenAt = now();
    const take = await health.takeCapacity(deployment.id, limits, this.tokens, takenAt, this.deps.leaseTtlMs);
    if (!take.taken) {
      this.note(deployment, 'at-limit', 0);
      // The probe was not used: report nothing; its claim lapses after the cool-down.
      return { admitted: false, retryAfterMs: take.retryAfterMs ?? 1_000 };
    }
    return { admitted: true, lease: take.lease, takenAt, ...(probe ? { probe } : {}) };
  }

  /** ⑦ the deployment's tokens per minute: the estimate taken at admission becomes what was used. */
  private async correctTokens(deployment: Deployment, gate: { takenAt?: number }, tokens: number) {
    if (gate.takenAt === undefined || deployment.limits.tokensPerMinute === undefined) return;
    const used = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.round(tokens)));
    if (!Number.isFinite(used) || used === this.tokens) return;
    await this.deps.health
      .adjustTokens(deployment.id, gate.takenAt, used - this.tokens, this.deps.now())
      .catch(() => {});
  }

  private async record(candidate: CandidateState, outcome: 'success' | 'failure', probe?: string) {
    const policy = candidate.group.route.circuit;
    if (!policy) return;
    await this.deps.health.record(candidate.deployment.id, outcome, policy, this.deps.now(), probe);
  }

  private async release(deployment: Deployment, lease: string): Promise<void> {
    await this.deps.health.releaseCapacity(deployment.id, lease, this.deps.now()).catch(() => {});
  }

  private note(deployment: Deployment, status: AttemptRecord['status'], ms: number): void {
    // Skipped candidates are logged too, but only attempts that reached an upstream count.
    this.log.push({ deployment: deployment.name, status, duration_ms: Math.round(ms * 100) / 100 });
  }

  /** Attempts that reached (or tried to reach) an upstream: `x-tollgate-attempts`. */
  get count(): number {
    return this.log.filter((entry) => typeof entry.status === 'number' || entry.status === 'aborted').length;
  }
}

function candidatesOf(groups: RoutePlan['groups']): CandidateState[] {
  return groups.flatMap((group) =>
    group.deployments.map((deployment) => ({ deployment, group, tries: 0, out: false, notBefore: 0 })),
  );
}

/** Failures another try may fix: the upstream's, never the client's. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof UpstreamError || error instanceof UpstreamTimeoutError) return true;
  // A key pool with every key resting is this deployment's trouble, not the request's.
  if (error instanceof ServiceUnavailableError) return true;
  // An in-process model's slots and queue all taken: as an upstream's 429, another deployment may have room.
  if (error instanceof BackendBusyError) return true;
  if (error instanceof UpstreamClientError) return [408, 409, 429].includes(error.status);
  return false;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(new ClientAbortedError());
    }
    signal.addEventListener('abort', aborted, { once: true });
  });
}
