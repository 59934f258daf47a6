import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CircuitPolicy, HealthStore } from '../src/store/health-store.js';
import type { Store } from '../src/store/store.js';
import { scanKeys } from './support/redis-cluster.js';
import { storeSubjects } from './support/store-subjects.js';

/**
 * The deployment health sub-store (circuit breakers and provider limits), one contract for the
 * memory and the Redis stores. Time is the callers' clock (T0 + …): nothing here sleeps.
 */
const stores = storeSubjects({ clearBeforeEach: true });
const subjects = stores.subjects;

beforeAll(stores.start);
afterAll(stores.stop);

const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
const MINUTE = 60_000;
const policy: CircuitPolicy = {
  failures: 3,
  failureRatio: 0.5,
  minRequests: 10,
  windowMs: 10_000,
  cooldownMs: 5_000,
};

describe.each(subjects)('Health store contract: $name', (subject) => {
  let store: Store | undefined;
  const extra: Store[] = [];

  beforeEach(async (context) => {
    store = await subject.open();
    if (!store) context.skip(`${subject.name}: not available here (see the notice above)`);
  });

  afterEach(async () => {
    await Promise.all([store?.close(), ...extra.splice(0).map((s) => s.close())]);
    store = undefined;
  });

  const h = (): HealthStore => {
    if (!store) throw new Error('no store');
    return store.health;
  };
  /** Another gateway instance on the same shared state (the memory store is its own fleet). */
  const sibling = async (): Promise<HealthStore> => {
    const other = await subject.sibling(store as Store);
    if (other !== store) extra.push(other);
    return other.health;
  };
  const fail = async (d: string, times: number, at = T0) => {
    let state = '';
    for (let i = 0; i < times; i++) state = await h().record(d, 'failure', policy, at);
    return state;
  };
  const openCircuit = async (d: string, at = T0) => {
    expect(await fail(d, policy.failures, at)).toBe('open');
  };

  describe('circuit breaker', () => {
    it('admits while closed and opens after N consecutive failures', async () => {
      expect(await h().admit('gpt/a', policy, T0)).toEqual({ allowed: true });
      expect(await fail('gpt/a', 2)).toBe('closed');
      expect(await h().admit('gpt/a', policy, T0)).toEqual({ allowed: true });
      expect(await fail('gpt/a', 1)).toBe('open');
      expect(await h().admit('gpt/a', policy, T0 + 1_000)).toEqual({ allowed: false, retryAfterMs: 4_000 });
    });

    it('a success resets the consecutive count', async () => {
      await fail('gpt/a', 2);
      expect(await h().record('gpt/a', 'success', policy, T0)).toBe('closed');
      expect(await fail('gpt/a', 2)).toBe('closed');
      expect((await h().health(['gpt/a'], T0))[0]).toMatchObject({
        state: 'closed',
        consecutiveFailures: 2,
        windowRequests: 5,
        windowFailures: 4,
      });
    });

    it('opens on the failure ratio over the window once it has seen minRequests', async () => {
      // Alternating outcomes never reach 3 in a row; the 10th outcome makes 5 of 10 failed.
      for (let i = 0; i < 9; i++) {
        const state = await h().record('gpt/a', i % 2 === 0 ? 'success' : 'failure', policy, T0 + i);
        expect(state).toBe('closed');
      }
      expect(await h().record('gpt/a', 'failure', policy, T0 + 9)).toBe('open');
    });

    it('forgets outcomes that have slid out of the window', async () => {
      for (let i = 0; i < 8; i++) await h().record('gpt/a', i % 2 ? 'failure' : 'success', policy, T0);
      const later = T0 + policy.windowMs;
      expect(await h().record('gpt/a', 'success', policy, later)).toBe('closed');
      expect(await h().record('gpt/a', 'failure', policy, later)).toBe('closed');
      expect((await h().health(['gpt/a'], later))[0]).toMatchObject({ windowRequests: 2, windowFailures: 1 });
    });

    it('lets exactly one probe through across the fleet once the cool-down is over', async () => {
      const other = await sibling();
      await openCircuit('gpt/a');
      expect((await other.admit('gpt/a', policy, T0 + 4_999)).allowed).toBe(false);
      const at = T0 + policy.cooldownMs;
      const admissions = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? other : h()).admit('gpt/a', policy, at)),
      );
      const probes = admissions.filter((a) => a.allowed);
      expect(probes).toHaveLength(1);
      expect(probes[0]).toEqual({ allowed: true, probe: expect.any(String) });
      for (const refused of admissions.filter((a) => !a.allowed))
        expect(refused).toEqual({ allowed: false, retryAfterMs: policy.cooldownMs });
      expect((await other.health(['gpt/a'], at))[0]).toMatchObject({ state: 'half-open', probing: true });
    });

    it('closes when the probe succeeds, for every instance', async () => {
      const other = await sibling();
      await openCircuit('gpt/a');
      const at = T0 + policy.cooldownMs;
      const admission = await h().admit('gpt/a', policy, at);
      if (!admission.allowed) throw new Error('expected the probe');
      expect(await h().record('gpt/a', 'success', policy, at + 10, admission.probe)).toBe('closed');
      expect(await other.admit('gpt/a', policy, at + 11)).toEqual({ allowed: true });
      expect((await other.health(['gpt/a'], at + 11))[0]).toMatchObject({
        state: 'closed',
        consecutiveFailures: 0,
        windowRequests: 0,
      });
    });

    it('re-opens for a whole cool-down when the probe fails', async () => {
      await openCircuit('gpt/a');
      const at = T0 + policy.cooldownMs;
      const admission = await h().admit('gpt/a', policy, at);
      if (!admission.allowed) throw new Error('expected the probe');
      expect(await h().record('gpt/a', 'failure', policy, at + 100, admission.probe)).toBe('open');
      expect(await h().admit('gpt/a', policy, at + 100)).toEqual({
        allowed: false,
        retryAfterMs: policy.cooldownMs,
      });
      expect((await h().health(['gpt/a'], at + 100))[0]).toMatchObject({
        state: 'open',
        retryAfterMs: policy.cooldownMs,
        probing: false,
      });
    });

    it('ignores late outcomes of requests sent before it opened, and stale probe tokens', async () => {
      await openCircuit('gpt/a');
      expect(await h().record('gpt/a', 'success', policy, T0 + 1)).toBe('open');
      const at = T0 + policy.cooldownMs;
      const admission = await h().admit('gpt/a', policy, at);
      if (!admission.allowed || !admission.probe) throw new Error('expected the probe');
      expect(await h().record('gpt/a', 'success', policy, at + 1)).toBe('half-open');
      expect(await h().record('gpt/a', 'success', policy, at + 1, 'not-the-probe')).toBe('half-open');
      expect((await h().health(['gpt/a'], at + 1))[0]).toMatchObject({ state: 'half-open', probing: true });
      // A probe token means nothing once its circuit has closed.
      expect(await h().record('gpt/a', 'success', policy, at + 2, admission.probe)).toBe('closed');
      expect(await h().record('gpt/a', 'failure', policy, at + 3, admission.probe)).toBe('closed');
    });

    it('hands the probe to another caller when the prober is lost', async () => {
      const other = await sibling();
      await openCircuit('gpt/a');
      const at = T0 + policy.cooldownMs;
      const lost = await h().admit('gpt/a', policy, at);
      expect(lost.allowed).toBe(true);
      expect(await other.admit('gpt/a', policy, at + policy.cooldownMs - 1)).toEqual({
        allowed: false,
        retryAfterMs: 1,
      });
      const next = await other.admit('gpt/a', policy, at + policy.cooldownMs);
      expect(next).toEqual({ allowed: true, probe: expect.any(String) });
      // The lost prober's answer, arriving late, no longer decides.
      if (lost.allowed && lost.probe)
        expect(await h().record('gpt/a', 'failure', policy, at + policy.cooldownMs + 1, lost.probe)).toBe(
          'half-open',
        );
    });

    it('reports state per deployment and keeps deployments apart', async () => {
      await openCircuit('gpt/a');
      await h().record('gpt/b', 'failure', policy, T0);
      const states = await (await sibling()).health(['gpt/a', 'gpt/b', 'never/seen'], T0 + 1_000);
      expect(states).toEqual([
        {
          deployment: 'gpt/a',
          state: 'open',
          consecutiveFailures: 0,
          windowRequests: 0,
          windowFailures: 0,
          retryAfterMs: 4_000,
          probing: false,
        },
        {
          deployment: 'gpt/b',
          state: 'closed',
          consecutiveFailures: 1,
          windowRequests: 1,
          windowFailures: 1,
          probing: false,
        },
        {
          deployment: 'never/seen',
          state: 'closed',
          consecutiveFailures: 0,
          windowRequests: 0,
          windowFailures: 0,
          probing: false,
        },
      ]);
      // Half-open once the cool-down is over, before anyone has probed.
      expect((await h().health(['gpt/a'], T0 + policy.cooldownMs))[0]).toMatchObject({
        state: 'half-open',
        probing: false,
      });
    });

    it('keeps a deployment under one hash tag, whatever its name', async () => {
      const name = 'odd {model}/x y';
      await openCircuit(name);
      expect((await h().admit(name, policy, T0)).allowed).toBe(false);
      const servers = subject.servers();
      if (servers.length === 0) return;
      const keys = (await Promise.all(servers.map((server) => scanKeys(server, 'tg:*')))).flat();
      expect(keys).toEqual([`tg:{h:${encodeURIComponent(name)}}:circuit`]);
    });
  });

  describe('deployment limits', () => {
    const lease = 30_000;

    it('counts requests per minute across the fleet and refuses at the limit', async () => {
      const other = await sibling();
      const limits = { requestsPerMinute: 3 };
      expect(await h().takeCapacity('gpt/a', limits, 0, T0, lease)).toMatchObject({ taken: true });
      expect(await other.takeCapacity('gpt/a', limits, 0, T0, lease)).toMatchObject({ taken: true });
      expect(await h().takeCapacity('gpt/a', limits, 0, T0, lease)).toMatchObject({ taken: true });
      expect(await other.takeCapacity('gpt/a', limits, 0, T0 + 15_000, lease)).toEqual({
        taken: false,
        limit: 'requests_per_minute',
        retryAfterMs: 45_000,
      });
      // Another deployment and the next minute are counted apart.
      expect(await h().takeCapacity('gpt/b', limits, 0, T0, lease)).toMatchObject({ taken: true });
      expect(await h().takeCapacity('gpt/a', limits, 0, T0 + MINUTE, lease)).toMatchObject({ taken: true });
    });

    it('counts tokens per minute, all or nothing', async () => {
      const limits = { tokensPerMinute: 1_000 };
      expect(await h().takeCapacity('gpt/a', limits, 700, T0, lease)).toMatchObject({ taken: true });
      expect(await h().takeCapacity('gpt/a', limits, 400, T0, lease)).toEqual({
        taken: false,
        limit: 'tokens_per_minute',
        retryAfterMs: MINUTE,
      });
      // The refused request counted nothing: a smaller one still fits.
      expect(await h().takeCapacity('gpt/a', limits, 300, T0, lease)).toMatchObject({ taken: true });
      expect((await h().takeCapacity('gpt/a', limits, 1, T0, lease)).taken).toBe(false);
    });

    it('holds concurrency slots until released, or until a lost lease runs out', async () => {
      const limits = { maxConcurrent: 2 };
      const first = await h().takeCapacity('gpt/a', limits, 0, T0, lease);
      const second = await h().takeCapacity('gpt/a', limits, 0, T0, lease);
      if (!first.taken || !second.taken) throw new Error('expected two slots');
      expect(await h().takeCapacity('gpt/a', limits, 0, T0, lease)).toEqual({
        taken: false,
        limit: 'max_concurrent',
      });
      await h().releaseCapacity('gpt/a', first.lease, T0 + 1);
      await h().releaseCapacity('gpt/a', first.lease, T0 + 1);
      await h().releaseCapacity('gpt/a', 'unknown-lease', T0 + 1);
      const third = await h().takeCapacity('gpt/a', limits, 0, T0 + 2, lease);
      expect(third.taken).toBe(true);
      expect((await h().takeCapacity('gpt/a', limits, 0, T0 + 3, lease)).taken).toBe(false);
      // `second` is never released (its process was lost): its slot frees once its lease ends.
      expect((await h().takeCapacity('gpt/a', limits, 0, T0 + lease, lease)).taken).toBe(true);
    });

    it('checks every limit at once and counts nothing when one refuses', async () => {
      const limits = { requestsPerMinute: 2, tokensPerMinute: 100, maxConcurrent: 1 };
      const held = await h().takeCapacity('gpt/a', limits, 10, T0, lease);
      if (!held.taken) throw new Error('expected a slot');
      expect(await h().takeCapacity('gpt/a', limits, 10, T0, lease)).toEqual({
        taken: false,
        limit: 'max_concurrent',
      });
      await h().releaseCapacity('gpt/a', held.lease, T0);
      // The refusal above took no request: one more still fits in this minute.
      const again = await h().takeCapacity('gpt/a', limits, 10, T0, lease);
      if (!again.taken) throw new Error('expected a slot');
      await h().releaseCapacity('gpt/a', again.lease, T0);
      expect(await h().takeCapacity('gpt/a', limits, 10, T0, lease)).toMatchObject({
        taken: false,
        limit: 'requests_per_minute',
      });
    });

    it('never grants more than the limit to concurrent callers on several instances', async () => {
      const other = await sibling();
      const limits = { requestsPerMinute: 5, maxConcurrent: 4 };
      const takes = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          (i % 2 ? other : h()).takeCapacity('gpt/a', limits, 1, T0, lease),
        ),
      );
      expect(takes.filter((take) => take.taken)).toHaveLength(4);
    });

    it('corrects the tokens a take counted to what the answer used, in its minute only', async () => {
      const other = await sibling();
      const limits = { tokensPerMinute: 1_000 };
      expect(await h().takeCapacity('gpt/a', limits, 100, T0, lease)).toMatchObject({ taken: true });
      // Estimated 100, used 900: 900 counted, so 200 more no longer fit (on any instance).
      await h().adjustTokens('gpt/a', T0, 800, T0 + 5_000);
      expect(await other.takeCapacity('gpt/a', limits, 200, T0 + 6_000, lease)).toMatchObject({
        taken: false,
        limit: 'tokens_per_minute',
      });
      // Used less than estimated: the rest is given back, never below zero.
      await other.adjustTokens('gpt/a', T0, -500, T0 + 7_000);
      expect(await h().takeCapacity('gpt/a', limits, 600, T0 + 8_000, lease)).toMatchObject({ taken: true });
      await h().adjustTokens('gpt/a', T0, -1_000_000, T0 + 9_000);
      expect(await h().takeCapacity('gpt/a', limits, 1_000, T0 + 10_000, lease)).toMatchObject({
        taken: true,
      });
      // A correction arriving once its minute is over changes nothing in the next one.
      expect(await h().takeCapacity('gpt/a', limits, 100, T0 + MINUTE, lease)).toMatchObject({ taken: true });
      await h().adjustTokens('gpt/a', T0 + 30_000, 5_000, T0 + MINUTE + 1);
      await h().adjustTokens('gpt/a', T0 + MINUTE - 1, 5_000, T0 + MINUTE + 2);
      expect(await h().takeCapacity('gpt/a', limits, 900, T0 + MINUTE + 3, lease)).toMatchObject({
        taken: true,
      });
      // Nothing taken there: nothing to correct (no window is made up).
      await h().adjustTokens('gpt/b', T0, 5_000, T0);
      expect(await h().takeCapacity('gpt/b', limits, 1_000, T0, lease)).toMatchObject({ taken: true });
      await expect(h().adjustTokens('gpt/a', T0, 1.5, T0)).rejects.toThrow(TypeError);
    });

    it('takes any amount when there are no limits, and refuses bad token counts', async () => {
      for (let i = 0; i < 5; i++)
        expect(await h().takeCapacity('gpt/a', {}, 1_000_000, T0, lease)).toMatchObject({ taken: true });
      await expect(h().takeCapacity('gpt/a', {}, 1.5, T0, lease)).rejects.toThrow(TypeError);
      await expect(h().takeCapacity('gpt/a', {}, -1, T0, lease)).rejects.toThrow(TypeError);
    });
  });
});
