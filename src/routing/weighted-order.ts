/** A source of uniform numbers in [0, 1); Math.random in production, a seeded one in tests. */
export type RandomSource = () => number;

/**
 * Weighted random order without replacement: the first is picked with probability weight /
 * total, the second likewise among the rest, and so on, so retries follow the same weights.
 * One draw per pick, which keeps a seeded source's sequence easy to reason about.
 */
export function weightedOrder<T extends { weight: number }>(items: readonly T[], random: RandomSource): T[] {
  const left = [...items];
  const order: T[] = [];
  while (left.length > 0) {
    const total = left.reduce((sum, item) => sum + item.weight, 0);
    let point = random() * total;
    let index = left.findIndex((item) => {
      point -= item.weight;
      return point < 0;
    });
    // Rounding can leave the point a hair past the last weight.
    if (index === -1) index = left.length - 1;
    order.push(...left.splice(index, 1));
  }
  return order;
}
