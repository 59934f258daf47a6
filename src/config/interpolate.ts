import type { z } from 'zod';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Schema = z.core.$ZodType;

/** What this module reads of a zod schema's definition (zod 4's `_zod.def`). */
interface Def {
  type: string;
  innerType?: Schema;
  in?: Schema;
  options?: Schema[];
  discriminator?: string;
  shape?: Record<string, Schema>;
  valueType?: Schema;
  element?: Schema;
  values?: unknown[];
  getter?: () => Schema;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Numbers as people write them in a config: no leading zeros, no exponent, no `+`. */
const CLEAN_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?$/;

function defOf(schema: Schema): Def {
  return schema._zod.def as unknown as Def;
}

/** The schemas that judge a value, through wrappers (defaults, optional, transforms) and unions. */
function expand(schemas: readonly Schema[], value: unknown): Schema[] {
  const out: Schema[] = [];
  const visit = (schema: Schema) => {
    const def = defOf(schema);
    if (def.innerType) return visit(def.innerType);
    // A transform's input decides what the value must be.
    if (def.type === 'pipe' && def.in) return visit(def.in);
    if (def.type === 'lazy' && def.getter) return visit(def.getter());
    if (def.type === 'union' && def.options) {
      for (const option of chosenOptions(def, value)) visit(option);
      return;
    }
    out.push(schema);
  };
  for (const schema of schemas) visit(schema);
  return out;
}

/** A discriminated union's options for this value (a backend's by its `type`), or all of them. */
function chosenOptions(def: Def, value: unknown): Schema[] {
  const options = def.options ?? [];
  const discriminator = def.discriminator;
  if (discriminator === undefined || value === null || typeof value !== 'object') return options;
  const tag = (value as Record<string, unknown>)[discriminator];
  const chosen = options.filter((option) => {
    const field = defOf(option).shape?.[discriminator];
    return field !== undefined && (defOf(field).values ?? []).includes(tag);
  });
  return chosen.length > 0 ? chosen : options;
}

function childSchemas(schemas: readonly Schema[], key: string): Schema[] {
  return schemas.flatMap((schema) => {
    const def = defOf(schema);
    if (def.shape) return def.shape[key] ? [def.shape[key]] : [];
    if (def.type === 'record' && def.valueType) return [def.valueType];
    return [];
  });
}

function elementSchemas(schemas: readonly Schema[]): Schema[] {
  return schemas.flatMap((schema) => {
    const element = defOf(schema).element;
    return element ? [element] : [];
  });
}

/**
 * Text from `${VAR}` becomes a number or true/false where the config takes one (and not where
 * it takes text, or anything at all, such as a module's options): environment variables are
 * text, and `port: ${PORT:-8080}` means the number. An API key of digits stays text.
 */
function typed(text: string, schemas: readonly Schema[]): Json {
  const types = new Set(
    schemas.flatMap((schema) => {
      const def = defOf(schema);
      if (def.type === 'literal') return (def.values ?? []).map((literal) => typeof literal);
      return [def.type];
    }),
  );
  if (types.has('number') && CLEAN_NUMBER.test(text)) return Number(text);
  if (types.has('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

/**
 * `${VAR}` / `${VAR:-default}` in string values, walked along `schema` so that a value made by
 * it can be typed (see `typed`). Done on the parsed tree, not the raw text, so a secret
 * containing YAML syntax cannot change the document's structure. Paths are written as zod's
 * issues are (`origins.0`), so a value left empty here is reported once (see parseConfig).
 */
export function interpolate(value: Json, schema: Schema, env: NodeJS.ProcessEnv, problems: string[]): Json {
  return walk(value, [schema], env, '', problems);
}

function walk(
  value: Json,
  schemas: readonly Schema[],
  env: NodeJS.ProcessEnv,
  path: string,
  problems: string[],
): Json {
  const here = expand(schemas, value);
  if (typeof value === 'string') {
    let referenced = false;
    const text = value.replace(ENV_REF, (_whole, name: string, fallback: string | undefined) => {
      referenced = true;
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push(`${path || '(root)'}: environment variable ${name} is not set`);
      return '';
    });
    return referenced ? typed(text, here) : text;
  }
  if (Array.isArray(value)) {
    const elements = elementSchemas(here);
    return value.map((item, i) => walk(item, elements, env, `${path}.${i}`.replace(/^\./, ''), problems));
  }
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = walk(item, childSchemas(here, key), env, path ? `${path}.${key}` : key, problems);
    }
    return out;
  }
  return value;
}
