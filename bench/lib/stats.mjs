// Small, dependency-free statistics used by both the load generator and the orchestrator.
// Latencies stay as float milliseconds end to end: autocannon's own histogram stores whole
// milliseconds, which cannot resolve the sub-millisecond differences this benchmark is about.

/**
 * @typedef {object} Summary
 * @property {number} count
 * @property {number} min
 * @property {number} p50
 * @property {number} p90
 * @property {number} p99
 * @property {number} max
 * @property {number} mean
 */

/**
 * Nearest-rank percentile of an ascending array (no interpolation, so every reported value was
 * actually observed).
 * @param {ArrayLike<number>} sorted ascending
 * @param {number} p in [0, 100]
 * @returns {number}
 */
export function percentileOfSorted(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  const index = Math.min(sorted.length - 1, Math.max(0, rank - 1));
  return sorted[index] ?? Number.NaN;
}

/**
 * @param {ArrayLike<number>} values any order; not modified
 * @returns {Summary}
 */
export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    min: sorted.length > 0 ? (sorted[0] ?? Number.NaN) : Number.NaN,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

/**
 * Median that averages the two middle values for even counts (used across rounds, where the
 * count is small and usually odd).
 * @param {readonly number[]} values
 * @returns {number}
 */
export function median(values) {
  const finite = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const middle = Math.floor(finite.length / 2);
  if (finite.length % 2 === 1) return finite[middle] ?? Number.NaN;
  return ((finite[middle - 1] ?? Number.NaN) + (finite[middle] ?? Number.NaN)) / 2;
}

/**
 * Growable Float64 buffer: recording a latency must not allocate per sample, or the load
 * generator's own GC pauses would show up in the latencies it measures.
 */
export class SampleBuffer {
  /** @param {number} initialCapacity */
  constructor(initialCapacity = 16_384) {
    /** @type {Float64Array} */
    this.values = new Float64Array(Math.max(16, initialCapacity));
    this.length = 0;
  }

  /** @param {number} value */
  push(value) {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length] = value;
    this.length += 1;
  }

  /** @returns {Float64Array} a view of the recorded samples */
  view() {
    return this.values.subarray(0, this.length);
  }
}
