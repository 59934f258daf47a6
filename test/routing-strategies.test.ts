import { describe, expect, it } from 'vitest';
import type { RoutingStrategy } from '../src/config/schema.js';
import { InFlightCounter } from '../src/routing/in-flight-counter.js';
import { LatencyTracker } from '../src/routing/latency-tracker.js';
import type { RoutedDeployment } from '../src/routing/route-table.js';
import { orderCandidates } from '../src/routing/strategies.js';
import { weightedOrder } from '../src/routing/weighted-order.js';
import { seededRandom as seeded } from './support/seeded-random.js';

function deployment(name: string, extra: Partial<RoutedDeployment> = {}): RoutedDeployment {
  return {
    id: `gpt/${name}`,
    name,
    backend: name,
    model: 'gpt-4o',
    weight: 1,
    priority: 0,
    limits: {},
    ...extra,
  };
}

const names = (list: RoutedDeployment[]) => list.map((d) => d.name);

/** How often each deployment comes first over `picks` orderings. */
function firstPicks(
  strategy: RoutingStrategy,
  deployments: RoutedDeployment[],
  picks: number,
  context: Parameters<typeof orderCandidates>[2] = {},
): Map<string, number> {
  const random = seeded(42);
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const [first] = orderCandidates(strategy, deployments, { ...context, random });
    if (first) counts.set(first.name, (counts.get(first.name) ?? 0) + 1);
  }
  return counts;
}

const STRATEGIES: RoutingStrategy[] = [
  'weighted',
  'priority',
  'least-in-flight',
  'lowest-latency',
  'lowest-cost',
];

describe('weighted random (the default)', () => {
  it('spreads first picks in proportion to the weights, within 5 points over 600 picks', () => {
    const deployments = [
      deployment('a', { weight: 1 }),
      deployment('b', { weight: 2 }),
      deployment('c', { weight: 7 }),
    ];
    const picks = 600;
    const counts = firstPicks('weighted', deployments, picks);
    const share = (name: string) => (counts.get(name) ?? 0) / picks;
    expect(Math.abs(share('a') - 0.1)).toBeLessThan(0.05);
    expect(Math.abs(share('b') - 0.2)).toBeLessThan(0.05);
    expect(Math.abs(share('c') - 0.7)).toBeLessThan(0.05);
  });

  it('orders every deployment once, so retries follow the weights too', () => {
    const random = seeded(7);
    const deployments = [deployment('a'), deployment('b', { weight: 3 }), deployment('c')];
    for (let i = 0; i < 50; i++) {
      expect(names(orderCandidates('weighted', deployments, { random })).sort()).toEqual(['a', 'b', 'c']);
    }
    // With the heavy one out, the other two share the first place evenly.
    const seconds = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const order = weightedOrder(deployments, random);
      if (order[0]?.name === 'b')
        seconds.set(order[1]?.name ?? '', (seconds.get(order[1]?.name ?? '') ?? 0) + 1);
    }
    const total = (seconds.get('a') ?? 0) + (seconds.get('c') ?? 0);
    expect(total).toBeGreaterThan(200);
    expect(Math.abs((seconds.get('a') ?? 0) / total - 0.5)).toBeLessThan(0.1);
  });

  it('picks the last deployment when the draw is at the very top of the range', () => {
    const deployments = [deployment('a'), deployment('b')];
    expect(names(weightedOrder(deployments, () => 0.999_999_999_999))).toEqual(['b', 'a']);
    expect(names(weightedOrder(deployments, () => 0))).toEqual(['a', 'b']);
  });
});

describe('priority tiers', () => {
  const deployments = [
    deployment('backup', { priority: 1 }),
    deployment('main-1', { priority: 0 }),
    deployment('main-2', { priority: 0, weight: 3 }),
    deployment('last', { priority: 2 }),
  ];

  it('sends traffic to tier 0 only, weighted within it, while any of it is in', () => {
    const counts = firstPicks('priority', deployments, 400);
    expect([...counts.keys()].sort()).toEqual(['main-1', 'main-2']);
    expect((counts.get('main-2') ?? 0) / 400).toBeGreaterThan(0.65);
    expect((counts.get('main-2') ?? 0) / 400).toBeLessThan(0.85);
    const order = names(orderCandidates('priority', deployments, { random: seeded(1) }));
    expect(order.slice(2)).toEqual(['backup', 'last']);
  });

  it('reaches a later tier only once every earlier one is out', () => {
    const excluded = new Set(['gpt/main-1']);
    expect(names(orderCandidates('priority', deployments, { excluded, random: seeded(2) }))).toEqual([
      'main-2',
      'backup',
      'last',
    ]);
    excluded.add('gpt/main-2');
    expect(names(orderCandidates('priority', deployments, { excluded }))).toEqual(['backup', 'last']);
    excluded.add('gpt/backup');
    expect(names(orderCandidates('priority', deployments, { excluded }))).toEqual(['last']);
  });
});

describe('least in flight', () => {
  it('prefers the deployment with the fewest requests under way from this instance', () => {
    const inFlight = new InFlightCounter();
    const deployments = [deployment('a'), deployment('b'), deployment('c')];
    const endA = [inFlight.start('gpt/a'), inFlight.start('gpt/a')];
    const endC = inFlight.start('gpt/c');
    expect(names(orderCandidates('least-in-flight', deployments, { inFlight, random: seeded(3) }))).toEqual([
      'b',
      'c',
      'a',
    ]);
    // Ending requests (once each, however often called) changes the order.
    for (const end of endA) {
      end();
      end();
    }
    expect(inFlight.get('gpt/a')).toBe(0);
    inFlight.start('gpt/b');
    endC();
    const counts = firstPicks('least-in-flight', deployments, 200, { inFlight });
    // a and c are tied at 0: they share the first place; b (1 in flight) never has it.
    expect([...counts.keys()].sort()).toEqual(['a', 'c']);
    expect(counts.get('a')).toBeGreaterThan(60);
    expect(counts.get('c')).toBeGreaterThan(60);
  });
});

describe('lowest latency (an EWMA of time to first byte, per instance)', () => {
  it('averages samples with the given weight', () => {
    const latency = new LatencyTracker(0.5);
    expect(latency.get('gpt/a')).toBeUndefined();
    latency.observe('gpt/a', 100);
    expect(latency.get('gpt/a')).toBe(100);
    latency.observe('gpt/a', 200);
    expect(latency.get('gpt/a')).toBe(150);
    latency.observe('gpt/a', Number.NaN);
    expect(latency.get('gpt/a')).toBe(150);
    expect(() => new LatencyTracker(0)).toThrow(RangeError);
  });

  it('prefers the fastest, trying unmeasured deployments first so each gets measured', () => {
    const latency = new LatencyTracker();
    const deployments = [deployment('slow'), deployment('fast'), deployment('new')];
    latency.observe('gpt/slow', 900);
    latency.observe('gpt/fast', 120);
    expect(names(orderCandidates('lowest-latency', deployments, { latency }))).toEqual([
      'new',
      'fast',
      'slow',
    ]);
    latency.observe('gpt/new', 400);
    expect(names(orderCandidates('lowest-latency', deployments, { latency }))).toEqual([
      'fast',
      'new',
      'slow',
    ]);
    // The average follows a deployment that slows down.
    for (let i = 0; i < 10; i++) latency.observe('gpt/fast', 2_000);
    expect(names(orderCandidates('lowest-latency', deployments, { latency }))).toEqual([
      'new',
      'slow',
      'fast',
    ]);
  });
});

describe('lowest cost (the price table and quota.prices)', () => {
  it('prefers the cheapest upstream model, unpriced ones last', () => {
    const deployments = [
      deployment('big', { model: 'gpt-4o' }),
      deployment('unknown', { model: 'no-such-model' }),
      deployment('mini', { model: 'gpt-4o-mini-2024-07-18' }),
      deployment('also-unknown', { model: 'another-unpriced' }),
    ];
    const order = names(orderCandidates('lowest-cost', deployments, { random: seeded(4) }));
    expect(order.slice(0, 2)).toEqual(['mini', 'big']);
    expect(order.slice(2).sort()).toEqual(['also-unknown', 'unknown']);
  });

  it('uses quota.prices and weighs input and output by the request’s tokens', () => {
    const prices = { 'in-cheap': { input: 1, output: 10 }, 'out-cheap': { input: 5, output: 2 } };
    const deployments = [deployment('x', { model: 'in-cheap' }), deployment('y', { model: 'out-cheap' })];
    const long = { input: 1_000, output: 10 };
    const chatty = { input: 10, output: 1_000 };
    expect(names(orderCandidates('lowest-cost', deployments, { prices, tokens: long }))).toEqual(['x', 'y']);
    expect(names(orderCandidates('lowest-cost', deployments, { prices, tokens: chatty }))).toEqual([
      'y',
      'x',
    ]);
    // An override beats the built-in price.
    const cheaper = { 'gpt-4o': { input: 0.01, output: 0.01 } };
    const builtIn = [deployment('mini', { model: 'gpt-4o-mini' }), deployment('big', { model: 'gpt-4o' })];
    expect(names(orderCandidates('lowest-cost', builtIn, { prices: cheaper }))).toEqual(['big', 'mini']);
  });

  it('prices a wildcard deployment by the name it is asked for', () => {
    const wildcard = deployment('openai', { model: undefined });
    const order = orderCandidates('lowest-cost', [deployment('dear', { model: 'gpt-4o' }), wildcard], {
      upstreamModel: (d) => d.model ?? 'gpt-4o-mini',
    });
    expect(names(order)).toEqual(['openai', 'dear']);
  });
});

describe('exclusions', () => {
  it.each(STRATEGIES)(
    '%s leaves excluded deployments out, and answers nothing when all are out',
    (strategy) => {
      const deployments = [deployment('a'), deployment('b'), deployment('c')];
      const excluded = new Set(['gpt/b']);
      for (let seed = 0; seed < 20; seed++) {
        const order = names(orderCandidates(strategy, deployments, { excluded, random: seeded(seed) }));
        expect(order.sort()).toEqual(['a', 'c']);
      }
      expect(
        orderCandidates(strategy, deployments, { excluded: new Set(['gpt/a', 'gpt/b', 'gpt/c']) }),
      ).toEqual([]);
    },
  );
});
