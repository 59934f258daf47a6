import { z } from 'zod';

/**
 * A prompt or an embeddings input: text, texts, token ids, or arrays of token ids. Each array
 * branch of the union first looks at the value's shape (its first element) and stops there when
 * it cannot be its kind, so the branch that fits checks each element once and the others cost
 * nothing. A plain union has every branch parse every element: a 2M-id `input` built 2M issues
 * in the array-of-strings branch and blocked the event loop for seconds before the token branch
 * was tried. The errors are the plain union's: a branch refused by its shape is one that would
 * have failed on its first element, so the same branches fail (or pass) as before.
 */
export function promptInput(options: { nonEmpty: boolean }) {
  const least = options.nonEmpty ? 1 : 0;
  const tokens = z.array(z.number().int());
  return z.union(
    [
      z.string(),
      shaped(isString, z.array(z.string()).min(least)),
      shaped(isNumber, tokens.min(least)),
      shaped(Array.isArray, z.array(tokens).min(least)),
    ],
    { error: 'expected a string, an array of strings, or token arrays' },
  );
}

/**
 * `schema`, tried only on an array that is empty or whose first element passes `first`. The
 * refusal aborts (as a wrong element type does) so that a union reports it the way it reported
 * the branch's own failure on that element.
 */
function shaped<T extends z.ZodType<unknown, unknown[]>>(first: (element: unknown) => boolean, schema: T) {
  const fits = (value: unknown) => Array.isArray(value) && (value.length === 0 || first(value[0]));
  return z.custom<unknown[]>(fits, { abort: true }).pipe(schema);
}

function isString(value: unknown): boolean {
  return typeof value === 'string';
}

function isNumber(value: unknown): boolean {
  return typeof value === 'number';
}
