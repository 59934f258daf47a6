import type { z } from 'zod';

/**
 * The config's problems in the gateway's own words. zod's defaults ("Too small: expected string
 * to have >=1 characters", "Invalid input") name zod's types, not what to write in tollgate.yaml.
 * Messages set on the schema itself (schema.ts) still win over these. Values read from the file
 * are never echoed, only described, except where they are one of a fixed set of words, or the
 * path of a file the config names (a model file, a module): a value in the wrong place may be a
 * secret. The messages of schema.ts and its checks (byte sizes, Redis addresses, trustProxy)
 * follow the same rule.
 */
type Issue = z.core.$ZodRawIssue;

const NOUNS: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of options',
  record: 'a mapping of names to settings',
  null: 'null',
};

function described(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  if (typeof input === 'number') return Number.isInteger(input) ? 'a whole number' : 'a fraction';
  if (typeof input === 'boolean') return input ? 'true' : 'false';
  if (typeof input === 'string') return input === '' ? 'an empty text' : 'text';
  return typeof input;
}

/** What the options that take one of several forms accept, by their path in the config. */
const FORMS: Record<string, string> = {
  'server.trustProxy': 'expected true, false, an address or CIDR of your proxies, or a list of them',
  'server.cors.origins': "expected '*' or a list of origins such as ['https://app.example.com']",
  redis: 'expected one of {url: redis://…}, {cluster: {nodes: […]}} or {sentinel: {name, sentinels: […]}}',
  auth: "expected 'none' or a mapping of options (cacheTtlMs, staleOkSeconds, cacheSize, failedAttempts)",
};

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

function quoted(values: readonly unknown[]): string {
  return values.map((value) => (typeof value === 'string' ? `'${value}'` : String(value))).join(', ');
}

/** A short word from a fixed set may be shown (`level: loud`); anything else is described. */
function shown(input: unknown): string {
  return typeof input === 'string' && /^[\w.-]{1,32}$/.test(input) ? `'${input}'` : described(input);
}

/** The options an object accepts, read from the schema that refused a key. */
function optionsOf(issue: Issue): string[] {
  const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod
    ?.def?.shape;
  return shape ? Object.keys(shape) : [];
}

function tooSmall(issue: Extract<Issue, { code: 'too_small' }>): string {
  const minimum = Number(issue.minimum);
  switch (issue.origin) {
    case 'string':
      return minimum <= 1
        ? 'must not be empty'
        : `must be at least ${plural(minimum, 'character', 'characters')}`;
    case 'array':
    case 'set':
      return `needs at least ${plural(minimum, 'entry', 'entries')}`;
    default:
      return issue.inclusive === false ? `must be greater than ${minimum}` : `must be at least ${minimum}`;
  }
}

function tooBig(issue: Extract<Issue, { code: 'too_big' }>): string {
  const maximum = Number(issue.maximum);
  switch (issue.origin) {
    case 'string':
      return `must be at most ${plural(maximum, 'character', 'characters')}`;
    case 'array':
    case 'set':
      return `takes at most ${plural(maximum, 'entry', 'entries')}`;
    default:
      return issue.inclusive === false ? `must be less than ${maximum}` : `must be at most ${maximum}`;
  }
}

export function configIssueMessage(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = NOUNS[issue.expected] ?? issue.expected;
      return issue.input === undefined
        ? `is required: expected ${expected}`
        : `expected ${expected}, got ${described(issue.input)}`;
    }
    case 'too_small':
      return tooSmall(issue);
    case 'too_big':
      return tooBig(issue);
    case 'invalid_value':
      return `expected one of ${quoted(issue.values)}, got ${shown(issue.input)}`;
    case 'unrecognized_keys': {
      const known = optionsOf(issue);
      const names = quoted(issue.keys);
      return `unknown ${issue.keys.length === 1 ? 'option' : 'options'} ${names}${
        known.length > 0 ? ` (the options here: ${known.join(', ')})` : ''
      }`;
    }
    case 'invalid_union': {
      // A discriminated union (a backend's `type`) says which options its discriminator takes.
      const { options, discriminator } = issue as { options?: unknown[]; discriminator?: string };
      if (Array.isArray(options) && options.length > 0) {
        const input = issue.input as Record<string, unknown> | undefined;
        const value =
          discriminator !== undefined && input !== null && typeof input === 'object'
            ? input[discriminator]
            : issue.input;
        return `expected one of ${quoted(options)}, got ${shown(value)}`;
      }
      const form = FORMS[(issue.path ?? []).map(String).join('.')];
      return form ?? `does not match any accepted form (got ${described(issue.input)})`;
    }
    case 'invalid_format':
      return issue.format === 'url' ? 'expected a URL' : `does not have the expected form (${issue.format})`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    case 'invalid_key':
      return 'has a name that is not accepted here';
    case 'invalid_element':
      return 'has an entry that is not accepted here';
    default:
      return issue.message ?? 'is not valid here';
  }
}
