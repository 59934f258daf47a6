import { InvalidRequestError } from '../../errors.js';

/** A list of numbers meant as token ids (the client sent numbers, whether or not they are ids). */
export function isNumberList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'number');
}

/**
 * Token ids as a client sends them: whole numbers from 0. Whether each is in the model's
 * vocabulary is checked once the model is known (LoadedModel).
 */
export function checkedTokenIds(ids: number[], param: string): number[] {
  const invalid = ids.find((id) => !Number.isInteger(id) || id < 0);
  if (invalid !== undefined)
    throw new InvalidRequestError(
      `'${param}': ${invalid} is not a token id; token ids are whole numbers from 0.`,
      param,
    );
  return ids;
}
