import type { z } from 'zod';
import { InvalidRequestError } from '../errors.js';

type Issue = z.core.$ZodIssue;

function paramOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/**
 * The value the client sent at `path`. zod 4 puts the offending value on an issue only when
 * parsing with `reportInput`, and then `undefined` for a missing field and for an invalid one
 * alike in some issue kinds (a failed union): looking it up tells "missing" from "wrong" for all.
 */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    if (!Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** How OpenAI names a JSON value's type in its messages: "a string", "an array", "null". */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return Number.isInteger(value) ? 'an integer' : 'a decimal number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

const EXPECTED: Record<string, string> = {
  array: 'an array',
  boolean: 'a boolean',
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  object: 'an object',
};

/** A schema's own `error: 'expected …'` text describes the field better than its bare type. */
function expectedPhrase(issue: Issue, fallback: string): string {
  return issue.message.startsWith('expected ') ? issue.message.slice('expected '.length) : fallback;
}

/** Values are echoed in messages, but never a client's megabytes of them. */
const SHOWN_MAX_CHARS = 100;

function shown(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  return text.length > SHOWN_MAX_CHARS ? `${text.slice(0, SHOWN_MAX_CHARS)}...` : text;
}

/** 'a', 'b', and 'c' (OpenAI's list of supported values). */
function listOf(values: readonly unknown[]): string {
  const quoted = values.map(shown);
  if (quoted.length <= 2) return quoted.join(' and ');
  return `${quoted.slice(0, -1).join(', ')}, and ${quoted.at(-1)}`;
}

/** One zod issue in OpenAI's words (the messages its API gives for the same mistakes). */
function describe(issue: Issue, param: string, value: unknown): string {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.expected === 'int' && typeof value === 'number' && Number.isInteger(value)) {
        // An integer too large (or small) to be exact: the bound it broke is the safe range.
        const small = value < 0;
        return `Invalid '${param}': integer ${small ? 'below minimum' : 'above maximum'} value. Expected a value ${small ? '>=' : '<='} ${small ? Number.MIN_SAFE_INTEGER : Number.MAX_SAFE_INTEGER}, but got ${String(value)} instead.`;
      }
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      return `Invalid type for '${param}': expected ${expectedPhrase(issue, expected)}, but got ${kindOf(value)} instead.`;
    }
    case 'invalid_union':
      // A string or number where only arrays and objects fit is the wrong type; an array with
      // a wrong element somewhere is a wrong value of the right kind.
      return value !== null && typeof value === 'object'
        ? `Invalid value for '${param}': expected ${expectedPhrase(issue, 'another shape')}.`
        : `Invalid type for '${param}': expected ${expectedPhrase(issue, 'another type')}, but got ${kindOf(value)} instead.`;
    case 'invalid_value':
      return `Invalid value for '${param}': ${shown(value)}. Supported values are: ${listOf(issue.values)}.`;
    case 'too_small':
    case 'too_big':
      return bound(issue, param, value);
    default:
      return `Invalid value for '${param}': ${issue.message}.`;
  }
}

function bound(
  issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig,
  param: string,
  value: unknown,
  /** What was sent, in words, when its value cannot say it (`1e400` parses as Infinity). */
  got?: string,
): string {
  const small = issue.code === 'too_small';
  const limit = small
    ? (issue as z.core.$ZodIssueTooSmall).minimum
    : (issue as z.core.$ZodIssueTooBig).maximum;
  const comparison = `${small ? '>' : '<'}${issue.inclusive === false ? '' : '='}`;
  const side = small ? 'below minimum' : 'above maximum';
  if (issue.origin === 'number' || issue.origin === 'int') {
    // A query string's number arrives as text (`?limit=1000`).
    const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    const integer = typeof number === 'number' && Number.isInteger(number);
    const kind = got !== undefined ? 'number' : integer ? 'integer' : 'decimal';
    return `Invalid '${param}': ${kind} ${side} value. Expected a value ${comparison} ${String(limit)}, but got ${got ?? String(value)} instead.`;
  }
  if (issue.origin === 'array' && Array.isArray(value)) {
    if (small && value.length === 0) {
      return `Invalid '${param}': empty array. Expected an array with minimum length ${String(limit)}, but got an empty array instead.`;
    }
    return `Invalid '${param}': array ${small ? 'too short' : 'too long'}. Expected an array with ${small ? 'minimum' : 'maximum'} length ${String(limit)}, but got an array with length ${value.length} instead.`;
  }
  if (issue.origin === 'string' && typeof value === 'string') {
    const got = value.length === 0 ? 'an empty string' : `a string with length ${value.length}`;
    return `Invalid '${param}': string too ${small ? 'short' : 'long'}. Expected a string with ${small ? 'minimum' : 'maximum'} length ${String(limit)}, but got ${got} instead.`;
  }
  return `Invalid value for '${param}': ${issue.message}.`;
}

function samePath(a: Issue, b: Issue): boolean {
  return a.path.length === b.path.length && a.path.every((part, i) => part === b.path[i]);
}

/**
 * The bound that says most. An integer too large to be exact fails zod's safe-integer range (and
 * its integer check) before the field's own, tighter range: name the field's range.
 */
function tightestBound(issues: readonly Issue[], issue: Issue, value: unknown): Issue {
  const integer = typeof value === 'number' && Number.isInteger(value);
  if (
    !(issue.code === 'too_big' || issue.code === 'too_small' || (issue.code === 'invalid_type' && integer))
  ) {
    return issue;
  }
  let best: Issue = issue;
  for (const other of issues) {
    if (!samePath(other, issue)) continue;
    if (other.code === 'too_big') {
      if (best.code !== 'too_big' || Number(other.maximum) < Number(best.maximum)) best = other;
    } else if (other.code === 'too_small' && best.code !== 'too_big') {
      if (best.code !== 'too_small' || Number(other.minimum) > Number(best.minimum)) best = other;
    }
  }
  return best;
}

/** `input` with `value` in place of what is at `path`, copying only the containers on the way. */
function replacedAt(input: unknown, path: readonly PropertyKey[], value: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined || input === null || typeof input !== 'object') return value;
  const copy: object = Array.isArray(input) ? [...(input as unknown[])] : { ...input };
  Reflect.set(copy, head, replacedAt(Reflect.get(copy, head), rest, value));
  return copy;
}

/** ±Infinity sent as a number (`1e400` in JSON), or as text a query string coerces (`?limit=1e400`). */
function infiniteSign(value: unknown): 1 | -1 | undefined {
  const number =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && !value.includes('Infinity')
        ? Number(value)
        : 0;
  if (number === Number.POSITIVE_INFINITY) return 1;
  if (number === Number.NEGATIVE_INFINITY) return -1;
  return undefined;
}

/**
 * A number past ±1.8e308 parses as ±Infinity, which zod calls no number at all ("expected a
 * number, but got a decimal number"): it is one, too large. The field's own range says so,
 * found by asking again with the largest finite number of that sign (of the same JSON type) in
 * its place; a field with no such bound is told it needs a finite number. Undefined for text
 * the field does not take as a number (`"1e400"` in a JSON body): its type is what is wrong.
 */
function tooLarge<T extends z.ZodType>(
  schema: T,
  input: unknown,
  issue: Issue,
  param: string,
  value: unknown,
  sign: 1 | -1,
): string | undefined {
  const largest = sign * Number.MAX_VALUE;
  const standIn = typeof value === 'string' ? String(largest) : largest;
  const retried = schema.safeParse(replacedAt(input, issue.path, standIn));
  const at = retried.success ? [] : retried.error.issues.filter((other) => samePath(other, issue));
  const first = at.find((other) => other.code === (sign > 0 ? 'too_big' : 'too_small'));
  const got = `${sign > 0 ? 'a number' : 'a negative number'} too large to represent`;
  if (first?.code === 'too_big' || first?.code === 'too_small') {
    const tightest = tightestBound(at, first, largest);
    if (tightest.code === 'too_big' || tightest.code === 'too_small')
      return bound(tightest, param, largest, got);
  }
  if (typeof value === 'string') return undefined;
  return `Invalid '${param}': number ${sign > 0 ? 'above maximum' : 'below minimum'} value. Expected a finite number, but got ${got} instead.`;
}

/**
 * Validates what the gateway reads and turns the first problem into OpenAI's 400, with
 * `param` naming the field the way OpenAI does (`messages[0].role`).
 */
export function parseRequestBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError('The request body must be a JSON object.');
  }
  return parseInput(schema, body);
}

/** Query strings and bodies alike: the first problem becomes a 400 naming its field. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new InvalidRequestError('The request body is invalid.');
  if (issue.code === 'unrecognized_keys') {
    const param = paramOf([...issue.path, issue.keys[0] ?? '']);
    throw new InvalidRequestError(`Unrecognized request argument supplied: ${issue.keys.join(', ')}.`, param);
  }
  const param = paramOf(issue.path);
  const value = valueAt(input, issue.path);
  if (value === undefined) {
    throw new InvalidRequestError(`Missing required parameter: '${param}'.`, param);
  }
  const sign = issue.code === 'invalid_type' && issue.expected === 'number' ? infiniteSign(value) : undefined;
  const huge = sign === undefined ? undefined : tooLarge(schema, input, issue, param, value, sign);
  if (huge !== undefined) throw new InvalidRequestError(huge, param);
  throw new InvalidRequestError(
    describe(tightestBound(result.error.issues, issue, value), param, value),
    param,
  );
}
