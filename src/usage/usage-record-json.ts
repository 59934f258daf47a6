import type { UsageAttempt, UsageRecord } from './usage-record.js';

/**
 * A usage record as JSON, for the Redis request log. Written out by hand for the reason
 * quota-script-json.ts is: JSON.stringify walked the record's ~20 fields at ~16k instructions a
 * record (bench/instructions.mjs, Redis store). The output is what JSON.stringify gives for a
 * record built as UsageRecorder builds it (keys in that order, undefined fields left out,
 * non-finite numbers as null); a test holds the two to it.
 */

/**
 * A string as JSON. Ids, model and deployment names are printable ASCII with nothing to escape:
 * quoted as they are, which costs a scan instead of a call into JSON.stringify (~1k instructions
 * each, seven a record).
 */
function str(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return JSON.stringify(value);
  }
  return `"${value}"`;
}
const num = (value: number) => (Number.isFinite(value) ? `${value}` : 'null');

/**
 * Every field of a record. A test type-checks that UsageRecord has no field this list lacks and
 * writes records with all of them, so a new field cannot be left out of the JSON unnoticed.
 */
export const USAGE_RECORD_FIELDS = [
  'at',
  'requestId',
  'teamId',
  'keyId',
  'model',
  'deployment',
  'status',
  'outcome',
  'promptTokens',
  'completionTokens',
  'totalTokens',
  'cachedTokens',
  'reasoningTokens',
  'usdMicros',
  'unpriced',
  'estimated',
  'latencyMs',
  'stream',
  'tags',
  'ttftMs',
  'cache',
  'attempts',
] as const satisfies ReadonlyArray<keyof UsageRecord>;

/** An attempt's fields, held to UsageAttempt by the same test as USAGE_RECORD_FIELDS. */
export const USAGE_ATTEMPT_FIELDS = ['deployment', 'status', 'duration_ms'] as const satisfies ReadonlyArray<
  keyof UsageAttempt
>;

function attemptJson(attempt: UsageAttempt): string {
  const status = typeof attempt.status === 'number' ? num(attempt.status) : str(attempt.status);
  return `{"deployment":${str(attempt.deployment)},"status":${status},"duration_ms":${num(attempt.duration_ms)}}`;
}

function listJson<T>(items: readonly T[], itemJson: (item: T) => string): string {
  let out = '';
  for (const item of items) out += `${out ? ',' : ''}${itemJson(item)}`;
  return `[${out}]`;
}

export function usageRecordJson(record: UsageRecord): string {
  const r = record;
  return (
    `{"at":${num(r.at)},"requestId":${str(r.requestId)},"teamId":${str(r.teamId)},"keyId":${str(r.keyId)}` +
    `,"model":${str(r.model)},"deployment":${str(r.deployment)},"status":${num(r.status)}` +
    (r.outcome === undefined ? '' : `,"outcome":${str(r.outcome)}`) +
    `,"promptTokens":${num(r.promptTokens)},"completionTokens":${num(r.completionTokens)}` +
    `,"totalTokens":${num(r.totalTokens)},"cachedTokens":${num(r.cachedTokens)}` +
    `,"reasoningTokens":${num(r.reasoningTokens)},"usdMicros":${num(r.usdMicros)}` +
    `,"unpriced":${r.unpriced},"estimated":${r.estimated},"latencyMs":${num(r.latencyMs)}` +
    `,"stream":${r.stream},"tags":${listJson(r.tags, str)}` +
    (r.ttftMs === undefined ? '' : `,"ttftMs":${num(r.ttftMs)}`) +
    (r.cache === undefined ? '' : `,"cache":${str(r.cache)}`) +
    (r.attempts === undefined ? '' : `,"attempts":${listJson(r.attempts, attemptJson)}`) +
    '}'
  );
}
