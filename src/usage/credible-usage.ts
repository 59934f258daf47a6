import { MAX_OUTPUT_TOKENS } from './token-estimate.js';

/**
 * Whether a usage object an upstream or a module reported can be charged as it is: every count in
 * it (top-level and inside its detail objects) a whole number from 0 to MAX_OUTPUT_TOKENS, and no
 * `*_tokens` field anything but a number (or null). Usage that is not (a negative count, "5",
 * 1e300) is treated as missing, so the gateway counts the answer itself and marks it estimated:
 * charged as given, a negative count made a request free and 1e300 ran a budget into figures no
 * report could sum.
 */
export function isCredibleUsage(usage: object): boolean {
  for (const [field, value] of Object.entries(usage)) {
    if (typeof value === 'number') {
      if (!isCount(value)) return false;
    } else if (value !== null && typeof value === 'object') {
      for (const detail of Object.values(value))
        if (typeof detail === 'number' && !isCount(detail)) return false;
    } else if (value !== null && field.endsWith('_tokens')) {
      return false;
    }
  }
  return true;
}

function isCount(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= MAX_OUTPUT_TOKENS;
}
