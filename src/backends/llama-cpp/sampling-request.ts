import { InvalidRequestError } from '../../errors.js';
import { withPlainNumbers } from '../../json-numbers.js';

/** The constraint a `response_format` asks for, in terms the model's grammar understands. */
export type OutputFormat =
  | { kind: 'text' }
  | { kind: 'json' }
  | { kind: 'json_schema'; schema: unknown }
  /** A forced tool call: `{"name", "arguments"}` JSON held to the tools' schemas. */
  | { kind: 'tool_call'; schema: unknown };

/** What a chat or completions request asks of the sampler, checked and in our terms. */
export interface SamplingRequest {
  maxTokens: number | undefined;
  /** The name of the field maxTokens came from, for error messages. */
  maxTokensParam: string;
  temperature: number;
  topP: number | undefined;
  seed: number | undefined;
  stops: string[];
  /** Token id -> logit bias (OpenAI's -100..100); -100 bans the token. */
  logitBias: Map<number, number>;
  format: OutputFormat;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function numberIn(
  body: Record<string, unknown>,
  param: string,
  min: number,
  max: number,
): number | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
    throw new InvalidRequestError(`'${param}' must be a number from ${min} to ${max}.`, param);
  return value;
}

function positiveInteger(body: Record<string, unknown>, param: string): number | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new InvalidRequestError(`'${param}' must be a whole number of at least 1.`, param);
  return value;
}

function stopsOf(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string'))
    throw new InvalidRequestError("'stop' must be a string or a list of strings.", 'stop');
  return list.filter((item) => item !== '');
}

function logitBiasOf(value: unknown): Map<number, number> {
  const bias = new Map<number, number>();
  if (value === undefined || value === null) return bias;
  if (!isRecord(value))
    throw new InvalidRequestError("'logit_bias' must map token ids to numbers.", 'logit_bias');
  for (const [key, amount] of Object.entries(value)) {
    const token = Number(key);
    if (!/^\d+$/.test(key) || typeof amount !== 'number' || amount < -100 || amount > 100)
      throw new InvalidRequestError(
        "'logit_bias' must map token ids to numbers from -100 to 100.",
        'logit_bias',
      );
    bias.set(token, amount);
  }
  return bias;
}

function formatOf(value: unknown): OutputFormat {
  if (value === undefined || value === null) return { kind: 'text' };
  const type = isRecord(value) ? value.type : undefined;
  if (type === 'text') return { kind: 'text' };
  if (type === 'json_object') return { kind: 'json' };
  if (type === 'json_schema' && isRecord(value) && isRecord(value.json_schema)) {
    const schema = value.json_schema.schema;
    if (!isRecord(schema))
      throw new InvalidRequestError(
        "'response_format.json_schema.schema' must be a JSON schema object.",
        'response_format',
      );
    return { kind: 'json_schema', schema: withPlainNumbers(schema) };
  }
  throw new InvalidRequestError(
    "'response_format' must be {type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema}}.",
    'response_format',
  );
}

/** Fields this backend cannot honour: refused in so many words rather than silently ignored. */
const UNSUPPORTED: Array<[param: string, applies: (value: unknown) => boolean, why: string]> = [
  [
    'functions',
    (value) => Array.isArray(value) && value.length > 0,
    "the deprecated function calling is not supported by in-process models; use 'tools'",
  ],
  [
    'function_call',
    (value) => value !== undefined && value !== null,
    "the deprecated function calling is not supported by in-process models; use 'tool_choice'",
  ],
  [
    'logprobs',
    (value) => value !== undefined && value !== null && value !== false,
    'logprobs are not supported by in-process models',
  ],
  [
    'top_logprobs',
    (value) => value !== undefined && value !== null,
    'logprobs are not supported by in-process models',
  ],
  ['echo', (value) => value === true, "'echo' is not supported by in-process models"],
  [
    'suffix',
    (value) => typeof value === 'string' && value !== '',
    "'suffix' (insertion) is not supported by in-process models",
  ],
  [
    'best_of',
    (value) => typeof value === 'number' && value > 1,
    "'best_of' above 1 is not supported by in-process models",
  ],
];

/** Reads the sampling fields shared by chat completions and legacy completions. */
export function readSamplingRequest(body: Record<string, unknown>): SamplingRequest {
  for (const [param, applies, why] of UNSUPPORTED) {
    if (applies(body[param])) throw new InvalidRequestError(`'${param}': ${why}.`, param);
  }
  const n = body.n;
  if (n !== undefined && n !== null && n !== 1)
    throw new InvalidRequestError(
      "'n' must be 1: in-process models generate one choice per request (send several requests instead).",
      'n',
    );
  const completionLimit = positiveInteger(body, 'max_completion_tokens');
  const maxTokensParam = completionLimit !== undefined ? 'max_completion_tokens' : 'max_tokens';
  return {
    maxTokens: completionLimit ?? positiveInteger(body, 'max_tokens'),
    maxTokensParam,
    // OpenAI's default temperature is 1.
    temperature: numberIn(body, 'temperature', 0, 2) ?? 1,
    topP: numberIn(body, 'top_p', 0, 1),
    seed: (() => {
      const seed = body.seed;
      if (seed === undefined || seed === null) return undefined;
      if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
        throw new InvalidRequestError("'seed' must be a whole number.", 'seed');
      // llama.cpp takes a 32-bit seed.
      return seed >>> 0;
    })(),
    stops: stopsOf(body.stop),
    logitBias: logitBiasOf(body.logit_bias),
    format: formatOf(body.response_format),
  };
}
