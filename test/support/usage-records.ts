import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { AdminHttp } from './admin-http.js';
import { pollUntil } from './poll.js';

/** One entry of `GET /admin/requests`: what the gateway recorded (and charged) for a request. */
export interface RequestRecord {
  request_id: string;
  model: string;
  status: number;
  stream: boolean;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  cost_usd: number;
  unpriced: boolean;
  estimated: boolean;
}

/** A request id to send as `x-request-id`: the gateway adopts it, so its record can be found. */
export function newRequestId(): string {
  return `usage-${randomUUID()}`;
}

/** SDK request options that send `id` as the request's id. */
export function withRequestId(id: string): { headers: Record<string, string> } {
  return { headers: { 'x-request-id': id } };
}

/**
 * The usage record of each request id, once all are written (records are written in batches
 * just after each response ends, so this reads until they are there).
 */
export async function recordsOf(admin: AdminHttp, ids: readonly string[]): Promise<RequestRecord[]> {
  const read = async () =>
    (await admin.ok<{ data: RequestRecord[] }>('GET', '/requests?limit=100', undefined, 200)).data;
  const found = await pollUntil(read, (data) => ids.every((id) => data.some((r) => r.request_id === id)));
  return ids.map((id) => {
    const record = found.find((r) => r.request_id === id);
    expect(record, `no usage record for ${id}`).toBeDefined();
    return record as RequestRecord;
  });
}

export async function recordOf(admin: AdminHttp, id: string): Promise<RequestRecord> {
  const [record] = await recordsOf(admin, [id]);
  return record as RequestRecord;
}

/** The record fields for usage an upstream reported with these figures. */
export function providerRecord(usage: {
  prompt: number;
  completion: number;
  cached?: number;
  reasoning?: number;
}): Partial<RequestRecord> {
  return {
    prompt_tokens: usage.prompt,
    completion_tokens: usage.completion,
    total_tokens: usage.prompt + usage.completion,
    cached_tokens: usage.cached ?? 0,
    reasoning_tokens: usage.reasoning ?? 0,
    estimated: false,
  };
}

/** The record fields for usage the gateway counted itself: no details, marked estimated. */
export function countedRecord(prompt: number, completion: number): Partial<RequestRecord> {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    cached_tokens: 0,
    reasoning_tokens: 0,
    estimated: true,
  };
}
