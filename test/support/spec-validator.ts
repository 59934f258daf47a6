/**
 * Validates response bodies against the component schemas of the vendored official OpenAI OpenAPI
 * spec (test/spec/openai-openapi.yaml, see test/spec/README.md for its provenance).
 *
 * Loading: the YAML (~3 MB) takes ~1.5 s to parse, so it is parsed at most once per process (lazy
 * module-level cache) and the plain YAML->JSON conversion is also cached in the system's temp dir, keyed by the
 * YAML file's sha256 (reading the cached JSON takes ~30 ms). Vitest runs test files in separate
 * workers, so without the on-disk cache every worker would pay the YAML parse again.
 *
 * Validation uses Ajv2020 (the spec is OpenAPI 3.1 / JSON Schema 2020-12) with `strict: false` so
 * OpenAPI-only keywords (`discriminator`, `x-oaiMeta`, `x-stainless-*`, `example`, ...) are ignored.
 * Ajv's own `discriminator` option is not enabled: it requires every oneOf branch to declare the
 * property itself, and compiling `Response` / `ResponseStreamEvent` with it throws
 * (`oneOf subschemas (or referenced schemas) must have "properties/type"`, the spec builds some
 * branches with allOf). Plain anyOf/oneOf semantics are used instead; OpenAI's union branches pin the
 * discriminator with an enum each, so they are mutually exclusive. The discriminator is still used,
 * only to make error messages readable (see explainUnion); it never changes what passes.
 *
 * Formats: ajv-formats, plus OpenAI's `unixtime` (seconds; milliseconds are rejected, see below).
 *
 * Deviations from the spec text, all applied in `prepareSchemas` and kept minimal:
 * 1. OpenAPI 3.0 `nullable: true` (111 occurrences) is not a JSON Schema 2020-12 keyword. It is
 *    rewritten to the 3.1 form `{ anyOf: [<schema without nullable>, { type: 'null' }] }`
 *    (`nullable: false` is simply dropped). Left as is, Ajv's built-in handling either refuses to
 *    compile (`"nullable" cannot be used without "type"` for the `$ref` + `nullable` on
 *    CreateChatCompletionStreamResponse.usage) or still rejects null when an `enum` is present
 *    (the `finish_reason: null` of every streamed chat chunk but the last).
 * 2. SPEC_PATCHES below: individual schemas that are provably stricter than real OpenAI responses.
 *    Each patch checks the exact shape it expects, so a spec update that changes the schema makes
 *    the patch fail loudly instead of silently doing something else.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { lastingTmpdir } from './lasting-tmpdir.js';

const SPEC_PATH = fileURLToPath(new URL('../spec/openai-openapi.yaml', import.meta.url));
const SPEC_ID = 'https://tollgate.invalid/test/spec/openai-openapi.json';
/** Bump when the cached file's content would change for the same YAML (it is a plain YAML->JSON copy). */
const CACHE_FORMAT = 'v1';
const MAX_LISTED_ERRORS = 25;
const EXCERPT_CHARS = 400;
const ERROR_DATA_CHARS = 80;
const ALLOWED_VALUES_CHARS = 4000;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nullable(schema: JsonObject): JsonObject {
  return { anyOf: [schema, { type: 'null' }] };
}

// ---------------------------------------------------------------------------------------------------
// Loading

function readSpecDocument(): JsonObject {
  const yamlBytes = readFileSync(SPEC_PATH);
  const sha256 = createHash('sha256').update(yamlBytes).digest('hex');
  const cacheFile = join(lastingTmpdir(), `tollgate-openai-openapi-${sha256}-${CACHE_FORMAT}.json`);
  try {
    const cached: unknown = JSON.parse(readFileSync(cacheFile, 'utf8'));
    if (isObject(cached) && isObject(cached.components)) return cached;
  } catch {
    // No cache yet (or unreadable / truncated): fall back to parsing the YAML.
  }
  const parsed: unknown = parseYaml(yamlBytes.toString('utf8'));
  if (!isObject(parsed) || !isObject(parsed.components)) {
    throw new Error(`${SPEC_PATH} does not look like an OpenAPI document (no components)`);
  }
  try {
    // Write then rename so concurrent test workers never read a half-written file.
    const tmpFile = `${cacheFile}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(tmpFile, JSON.stringify(parsed));
    renameSync(tmpFile, cacheFile);
  } catch {
    // The cache is only an optimisation (e.g. read-only tmpdir).
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------------
// Spec normalisation

/** Keys whose values are data (or vendor annotations), not subschemas: never rewrite inside them. */
const DATA_KEYS = new Set(['example', 'examples', 'default', 'const', 'enum']);
/** Keys whose values map arbitrary names (which may well be e.g. `default`) to subschemas. */
const SCHEMA_MAP_KEYS = new Set(['properties', 'patternProperties', 'dependentSchemas', '$defs']);

/** Deep copy of a schema tree with OpenAPI 3.0 `nullable` rewritten to JSON Schema 2020-12. */
function normalizeNullable(node: unknown, isSchemaMap = false): unknown {
  if (Array.isArray(node)) return node.map((item) => normalizeNullable(item));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (isSchemaMap) out[key] = normalizeNullable(value);
    else if (DATA_KEYS.has(key) || key.startsWith('x-')) out[key] = value;
    else out[key] = normalizeNullable(value, SCHEMA_MAP_KEYS.has(key));
  }
  if (!isSchemaMap && typeof out.nullable === 'boolean') {
    const isNullable = out.nullable;
    delete out.nullable;
    if (isNullable) return nullable(out);
  }
  return out;
}

interface SpecPatch {
  /** Path below components.schemas, e.g. ['Embedding', 'properties', 'embedding']. */
  path: readonly string[];
  /** The patched node must contain these keys/values (after nullable normalisation) or loading fails. */
  expected: JsonObject;
  replace: (original: JsonObject) => JsonObject;
}

/** Standard padded base64, as returned by `encoding_format: "base64"`. */
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

const SPEC_PATCHES: readonly SpecPatch[] = [
  {
    // Embedding.embedding is declared as `number[]` only, but CreateEmbeddingRequest documents
    // `encoding_format: "base64"`, for which the API returns the little-endian float32 vector as a
    // base64 string (openai-node even types it: `Base64EmbeddingResponse`, `embedding: string`, and
    // requests base64 by default). Allow exactly that: a float array OR a padded base64 string.
    path: ['Embedding', 'properties', 'embedding'],
    expected: {
      type: 'array',
      items: { type: 'number', format: 'float' },
    },
    replace: (original) => ({
      anyOf: [original, { type: 'string', contentEncoding: 'base64', pattern: BASE64_PATTERN }],
    }),
  },
  {
    // `system_fingerprint` is declared `type: string` (and deprecated), yet the spec's own chat
    // completion example (POST /chat/completions, "Logprobs") returns `"system_fingerprint": null`.
    // Allow null; the field stays optional as in the spec.
    path: ['CreateChatCompletionResponse', 'properties', 'system_fingerprint'],
    expected: { type: 'string', deprecated: true },
    replace: nullable,
  },
  {
    // Same field, same backend value, in the streamed chunks.
    path: ['CreateChatCompletionStreamResponse', 'properties', 'system_fingerprint'],
    expected: { type: 'string', deprecated: true },
    replace: nullable,
  },
  {
    // ModelResponseProperties.user is `type: string` (deprecated), but Responses API objects carry
    // `"user": null` when no user was sent: the spec's Response examples (POST /responses,
    // GET /responses/{id}, response.created, ...) all do, so all of them fail unpatched. Note:
    // ModelResponseProperties is also part of request schemas (via CreateModelResponseProperties:
    // CreateResponse, CreateChatCompletionRequest), which thus accept `user: null` too.
    path: ['ModelResponseProperties', 'properties', 'user'],
    expected: { type: 'string', deprecated: true },
    replace: nullable,
  },
  {
    // Response.usage is a plain `$ref: ResponseUsage`, but a response that has not finished yet
    // carries `"usage": null`: the spec's own examples of the response.created, response.in_progress
    // and response.failed stream events (and of a cancelled response) all do, and all fail unpatched.
    // Only the Response object's `usage` is made nullable; ResponseUsage itself is untouched.
    path: ['Response', 'allOf', '2', 'properties', 'usage'],
    expected: { $ref: '#/components/schemas/ResponseUsage' },
    replace: nullable,
  },
];

/** Compares only the keys of `expected` that matter for validation (descriptions etc. are ignored). */
function matchesExpected(actual: unknown, expected: unknown): boolean {
  if (isObject(expected)) {
    if (!isObject(actual)) return false;
    return Object.entries(expected).every(([key, value]) => matchesExpected(actual[key], value));
  }
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((value, i) => matchesExpected(actual[i], value))
    );
  }
  return actual === expected;
}

function child(node: unknown, segment: string): unknown {
  if (Array.isArray(node)) return node[Number(segment)];
  return isObject(node) ? node[segment] : undefined;
}

function applyPatch(schemas: JsonObject, patch: SpecPatch): void {
  const parent = patch.path.slice(0, -1).reduce<unknown>(child, schemas);
  const key = patch.path.at(-1) ?? '';
  const original = child(parent, key);
  if (!isObject(original) || !matchesExpected(original, patch.expected)) {
    throw new Error(
      `spec-validator: patch for components.schemas.${patch.path.join('.')} no longer matches the ` +
        `vendored spec; re-check whether the workaround is still needed. Found: ${excerpt(original, EXCERPT_CHARS)}`,
    );
  }
  const replacement = patch.replace(original);
  if (Array.isArray(parent)) parent[Number(key)] = replacement;
  else if (isObject(parent)) parent[key] = replacement;
}

function prepareSchemas(doc: JsonObject): JsonObject {
  const components = doc.components;
  const schemas = normalizeNullable(isObject(components) ? components.schemas : undefined);
  if (!isObject(schemas)) throw new Error(`${SPEC_PATH} has no components.schemas`);
  for (const patch of SPEC_PATCHES) applyPatch(schemas, patch);
  return schemas;
}

// ---------------------------------------------------------------------------------------------------
// Ajv

interface SpecState {
  ajv: Ajv2020;
  schemas: JsonObject;
  validators: Map<string, ValidateFunction>;
}

let state: SpecState | undefined;

/** Unix time in seconds. Values of 1e11 and above (year 5138+) are almost surely milliseconds. */
function isUnixTimeSeconds(value: number): boolean {
  return Number.isFinite(value) && value >= 0 && value < 1e11;
}

function getState(): SpecState {
  if (state) return state;
  const schemas = prepareSchemas(readSpecDocument());
  const ajv = new Ajv2020({ strict: false, allErrors: true, verbose: true, logger: false });
  ajvFormats.default(ajv);
  // OpenAI's own format for epoch timestamps (`created`, `created_at`, `expires_at`, ...).
  ajv.addFormat('unixtime', { type: 'number', validate: isUnixTimeSeconds });
  // Register the (normalised) schemas once; subschemas are compiled lazily via JSON pointer refs.
  ajv.addSchema({ $id: SPEC_ID, components: { schemas } });
  state = { ajv, schemas, validators: new Map() };
  return state;
}

function getValidator(schemaName: string): ValidateFunction {
  const { ajv, schemas, validators } = getState();
  const cached = validators.get(schemaName);
  if (cached) return cached;
  if (!Object.hasOwn(schemas, schemaName)) {
    throw new Error(`spec-validator: no schema #/components/schemas/${schemaName} in ${SPEC_PATH}`);
  }
  const validate = ajv.getSchema(`${SPEC_ID}#/components/schemas/${encodeURIComponent(schemaName)}`);
  if (!validate) throw new Error(`spec-validator: could not compile schema ${schemaName}`);
  validators.set(schemaName, validate);
  return validate;
}

// ---------------------------------------------------------------------------------------------------
// Error reporting

function excerpt(value: unknown, maxChars: number): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length} chars)` : text;
}

function describeError(error: ErrorObject): string {
  const where = error.instancePath === '' ? '(root)' : error.instancePath;
  let line = `${where} ${error.message ?? `failed ${error.keyword}`}`;
  const { params } = error;
  if (error.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    line += `: ${excerpt(params.allowedValues, ERROR_DATA_CHARS)}`;
  } else if (error.keyword === 'const') {
    line += `: ${excerpt(params.allowedValue, ERROR_DATA_CHARS)}`;
  } else if (error.keyword === 'additionalProperties') {
    line += `: ${excerpt(params.additionalProperty, ERROR_DATA_CHARS)}`;
  }
  const skipData = ['required', 'anyOf', 'oneOf', 'if'].includes(error.keyword);
  if (!skipData && 'data' in error) line += ` (got ${excerpt(error.data, ERROR_DATA_CHARS)})`;
  return line;
}

function isWithin(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** Keywords that do not constrain the instance (besides the union keyword itself). */
const ANNOTATION_KEYS = new Set([
  'description',
  'title',
  'deprecated',
  'default',
  'example',
  'examples',
  'discriminator',
]);
const MAX_UNION_DEPTH = 8;

interface DiscriminatedUnion {
  error: ErrorObject;
  property: string;
  branches: readonly unknown[];
}

/** A failed anyOf/oneOf whose schema declares an OpenAPI `discriminator` and nothing else. */
function asDiscriminatedUnion(error: ErrorObject): DiscriminatedUnion | undefined {
  if (error.keyword !== 'anyOf' && error.keyword !== 'oneOf') return undefined;
  const parent: unknown = error.parentSchema;
  if (!isObject(parent) || !isObject(parent.discriminator) || !Array.isArray(error.schema)) return undefined;
  const property = parent.discriminator.propertyName;
  if (typeof property !== 'string') return undefined;
  // `type: object` is redundant here: explainUnion only narrows when the data is an object.
  const constrained = Object.entries(parent).some(
    ([key, value]) =>
      key !== error.keyword &&
      !ANNOTATION_KEYS.has(key) &&
      !key.startsWith('x-') &&
      !(key === 'type' && value === 'object'),
  );
  return constrained ? undefined : { error, property, branches: error.schema };
}

const COMPONENT_PREFIX = '#/components/schemas/';

function resolveRef(schema: unknown): unknown {
  const ref = isObject(schema) ? schema.$ref : undefined;
  if (typeof ref !== 'string' || !ref.startsWith(COMPONENT_PREFIX)) return schema;
  return getState().schemas[ref.slice(COMPONENT_PREFIX.length)];
}

/** Values a schema pins `property` to (enum/const), following $refs and allOf members. */
function discriminatorValues(schema: unknown, property: string, depth = 0): unknown[] | undefined {
  const resolved = resolveRef(schema);
  if (!isObject(resolved) || depth > MAX_UNION_DEPTH) return undefined;
  const properties = resolved.properties;
  const pinned = resolveRef(isObject(properties) ? properties[property] : undefined);
  if (isObject(pinned) && Array.isArray(pinned.enum)) return pinned.enum;
  if (isObject(pinned) && 'const' in pinned) return [pinned.const];
  if (!Array.isArray(resolved.allOf)) return undefined;
  for (const member of resolved.allOf) {
    const values = discriminatorValues(member, property, depth + 1);
    if (values) return values;
  }
  return undefined;
}

/** Name and discriminator values of a `{ $ref: '#/components/schemas/X' }` union branch, if knowable. */
function branchValues(branch: unknown, property: string): { name: string; values: unknown[] } | undefined {
  const ref = isObject(branch) ? branch.$ref : undefined;
  if (typeof ref !== 'string' || !ref.startsWith(COMPONENT_PREFIX)) return undefined;
  const values = discriminatorValues(branch, property);
  return values && { name: ref.slice(COMPONENT_PREFIX.length), values };
}

/**
 * Explains a failed discriminated union by the one branch its discriminator value selects, instead of
 * the errors of all branches (Ajv reports ~160 lines for a bad ResponseStreamEvent). Returns
 * undefined, keeping Ajv's raw errors, whenever the branch cannot be determined unambiguously.
 */
function explainUnion(union: DiscriminatedUnion, depth: number): string[] | undefined {
  const { error, property } = union;
  const data: unknown = error.data;
  if (!isObject(data)) return undefined;
  const branches = union.branches.map((branch) => branchValues(branch, property));
  const known = branches.filter((branch) => branch !== undefined);
  if (known.length !== branches.length) return undefined;
  const where = error.instancePath === '' ? '(root)' : error.instancePath;
  // Listed in full (~2 KB for ResponseStreamEvent's 58 event types): it is what the reader needs.
  const allowed = excerpt(
    known.flatMap((branch) => branch.values),
    ALLOWED_VALUES_CHARS,
  );
  const value = data[property];
  if (value === undefined) {
    return [
      `- ${where} must have required property '${property}' (the ${error.keyword} discriminator, one of ${allowed})`,
    ];
  }
  const matching = known.filter((branch) => branch.values.includes(value));
  const [selected] = matching;
  if (selected === undefined) {
    return [
      `- ${where} matches no branch of the ${error.keyword}: ${property} ${excerpt(value, ERROR_DATA_CHARS)} is not one of ${allowed}`,
    ];
  }
  if (matching.length > 1) return undefined;
  const validate = getValidator(selected.name);
  if (validate(data)) return undefined;
  const branchErrors = (validate.errors ?? []).map((branchError) => ({
    ...branchError,
    instancePath: error.instancePath + branchError.instancePath,
  }));
  return [
    `- ${where} is checked as ${selected.name} (${property} ${excerpt(value, ERROR_DATA_CHARS)}):`,
    ...explainErrors(branchErrors, depth + 1).map((line) => `  ${line}`),
  ];
}

/** Ajv errors as readable `- ...` lines, with discriminated unions narrowed to the selected branch. */
function explainErrors(errors: readonly ErrorObject[], depth = 0): string[] {
  const explained = new Map<ErrorObject, string[]>();
  const explainedRoots: string[] = [];
  if (depth < MAX_UNION_DEPTH) {
    const unions = errors
      .map(asDiscriminatedUnion)
      .filter((union) => union !== undefined)
      .sort((a, b) => a.error.instancePath.length - b.error.instancePath.length);
    for (const union of unions) {
      const path = union.error.instancePath;
      if (explainedRoots.some((root) => isWithin(path, root))) continue;
      const lines = explainUnion(union, depth);
      if (lines === undefined) continue;
      explained.set(union.error, lines);
      explainedRoots.push(path);
    }
  }
  return errors.flatMap((error) => {
    const lines = explained.get(error);
    if (lines) return lines;
    return explainedRoots.some((root) => isWithin(error.instancePath, root))
      ? []
      : [`- ${describeError(error)}`];
  });
}

function formatErrors(schemaName: string, errors: readonly ErrorObject[], value: unknown): string {
  const lines = [...new Set(explainErrors(errors))];
  const listed = lines.slice(0, MAX_LISTED_ERRORS).map((line) => `  ${line}`);
  if (lines.length > listed.length) listed.push(`  … and ${lines.length - listed.length} more`);
  return [
    `Value does not match OpenAI spec schema #/components/schemas/${schemaName}:`,
    ...listed,
    `Value: ${excerpt(value, EXCERPT_CHARS)}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Public API

/**
 * Throws an Error listing every validation failure (instance path + message) and a JSON excerpt of
 * the value if `value` does not match `#/components/schemas/<schemaName>` of the OpenAI spec.
 */
export function validateSchema(schemaName: string, value: unknown): void {
  const validate = getValidator(schemaName);
  if (validate(value)) return;
  // Copy: explaining unions re-runs validators, which would overwrite `validate.errors`.
  throw new Error(formatErrors(schemaName, [...(validate.errors ?? [])], value));
}

/** POST /v1/chat/completions (non-streaming) body. */
export function expectChatCompletion(body: unknown): void {
  validateSchema('CreateChatCompletionResponse', body);
}

/** One parsed `data:` payload of a streamed /v1/chat/completions response (not `[DONE]`). */
export function expectChatCompletionChunk(chunk: unknown): void {
  validateSchema('CreateChatCompletionStreamResponse', chunk);
}

/** POST /v1/completions (legacy) body. */
export function expectCompletion(body: unknown): void {
  validateSchema('CreateCompletionResponse', body);
}

/**
 * One `data:` payload of a streamed legacy completion. The spec reuses CreateCompletionResponse
 * for chunks, whose `finish_reason` is a required string; but every chunk before the last has
 * `finish_reason: null` on OpenAI's own streams (that null is how clients see the stream go on).
 * So a null there is checked for exactly that and then validated as if the choice had ended;
 * every other field is validated as is.
 */
export function expectCompletionChunk(chunk: unknown): void {
  const copy = structuredClone(chunk) as { choices?: Array<{ finish_reason?: unknown }> };
  for (const choice of copy.choices ?? []) {
    if (choice.finish_reason === null) choice.finish_reason = 'stop';
  }
  validateSchema('CreateCompletionResponse', copy);
}

/** POST /v1/embeddings body (float arrays or, with `encoding_format: "base64"`, base64 strings). */
export function expectEmbeddingResponse(body: unknown): void {
  validateSchema('CreateEmbeddingResponse', body);
}

/** GET /v1/models body. */
export function expectModelList(body: unknown): void {
  validateSchema('ListModelsResponse', body);
}

/** GET /v1/models/{model} body. */
export function expectModel(body: unknown): void {
  validateSchema('Model', body);
}

/** Error envelope `{ "error": { message, type, param, code } }`. */
export function expectErrorResponse(body: unknown): void {
  validateSchema('ErrorResponse', body);
}

/** Responses API object (POST /v1/responses, GET /v1/responses/{id}). */
export function expectResponse(body: unknown): void {
  validateSchema('Response', body);
}

/** One parsed `data:` payload of a streamed /v1/responses response. */
export function expectResponseStreamEvent(event: unknown): void {
  validateSchema('ResponseStreamEvent', event);
}

/** POST /v1/moderations body. */
export function expectModerationResponse(body: unknown): void {
  validateSchema('CreateModerationResponse', body);
}

/** POST /v1/images/generations (and edits/variations) body. */
export function expectImagesResponse(body: unknown): void {
  validateSchema('ImagesResponse', body);
}
