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
    return `Invalid '${param}': ${integer ? 'integer' : 'decimal'} ${side} value. Expected a value ${comparison} ${String(limit)}, but got ${String(value)} instead.`;
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
  const samePath = (other: Issue) =>
    other.path.length === issue.path.length && other.path.every((part, i) => part === issue.path[i]);
  let best: Issue = issue;
  for (const other of issues) {
    if (!samePath(other)) continue;
    if (other.code === 'too_big') {
      if (best.code !== 'too_big' || Number(other.maximum) < Number(best.maximum)) best = other;
    } else if (other.code === 'too_small' && best.code !== 'too_big') {
      if (best.code !== 'too_small' || Number(other.minimum) > Number(best.minimum)) best = other;
    }
  }
  return best;
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
  throw new InvalidRequestError(
    describe(tightestBound(result.error.issues, issue, value), param, value),
    param,
  );
}
