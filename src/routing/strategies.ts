import type { RoutingStrategy } from '../config/schema.js';
import { priceFor } from '../usage/cost.js';
import type { ModelPrice } from '../usage/price-table.js';
import type { InFlightCounter } from './in-flight-counter.js';
import type { LatencyTracker } from './latency-tracker.js';
import type { RoutedDeployment } from './route-table.js';
import { type RandomSource, weightedOrder } from './weighted-order.js';

export interface CandidateContext {
  /** Ids of deployments out for this request (open circuit, at a limit, already tried). */
  excluded?: ReadonlySet<string> | undefined;
  random?: RandomSource | undefined;
  inFlight?: InFlightCounter | undefined;
  latency?: LatencyTracker | undefined;
  /** The upstream model each deployment is asked for (wildcard routes: the asked name). */
  upstreamModel?: ((deployment: RoutedDeployment) => string) | undefined;
  /** quota.prices: extends and overrides the built-in price table. */
  prices?: Readonly<Record<string, ModelPrice>> | undefined;
  /** The request's expected tokens, to compare prices; input and output weigh alike without it. */
  tokens?: { input: number; output: number } | undefined;
}

/**
 * The order in which to try a model's deployments for one request: the first is where it goes,
 * the rest are where a retry goes. Excluded deployments are left out; ties (and every strategy's
 * starting point) follow the weights at random, so equal deployments share the traffic.
 *  - weighted: at random, in proportion to the weights.
 *  - priority: tier 0 first (weighted within a tier); a later tier only after every earlier one.
 *  - least-in-flight: fewest requests under way from this instance first.
 *  - lowest-latency: lowest average time to first byte seen by this instance; unmeasured first.
 *  - lowest-cost: cheapest by the price table; unpriced last.
 */
export function orderCandidates(
  strategy: RoutingStrategy,
  deployments: readonly RoutedDeployment[],
  context: CandidateContext = {},
): RoutedDeployment[] {
  const { excluded, random = Math.random } = context;
  const open = deployments.filter((deployment) => !excluded?.has(deployment.id));
  const order = weightedOrder(open, random);
  switch (strategy) {
    case 'weighted':
      return order;
    case 'priority':
      return sortedBy(order, (deployment) => deployment.priority);
    case 'least-in-flight':
      return sortedBy(order, (deployment) => context.inFlight?.get(deployment.id) ?? 0);
    case 'lowest-latency':
      return sortedBy(order, (deployment) => context.latency?.get(deployment.id) ?? -1);
    case 'lowest-cost':
      return sortedBy(order, (deployment) => costOf(deployment, context));
  }
}

/** A stable sort, so equal keys keep the weighted order. */
function sortedBy<T>(items: T[], key: (item: T) => number): T[] {
  const keys = new Map(items.map((item) => [item, key(item)]));
  return items.sort((a, b) => {
    const [x, y] = [keys.get(a) as number, keys.get(b) as number];
    // Infinity - Infinity is NaN, which would scramble the sort.
    return x === y ? 0 : x - y;
  });
}

function costOf(deployment: RoutedDeployment, context: CandidateContext): number {
  const model = context.upstreamModel?.(deployment) ?? deployment.model;
  const price = model === undefined ? undefined : priceFor(model, context.prices);
  if (!price) return Number.POSITIVE_INFINITY;
  const { input, output } = context.tokens ?? { input: 1, output: 1 };
  return input * price.input + output * price.output;
}
