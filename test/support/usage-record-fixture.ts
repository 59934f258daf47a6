import { randomBytes } from 'node:crypto';
import type { UsageRecord } from '../../src/usage/usage-record.js';

/** A served request's usage record (10 + 5 tokens, 300 µUSD) with a fresh request id. */
export function usageRecord(overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    at: Date.UTC(2026, 10, 22, 23, 59, 0),
    requestId: `req_${randomBytes(6).toString('hex')}`,
    teamId: 'team_a',
    keyId: 'key_1',
    model: 'gpt-4o',
    deployment: 'openai/gpt-4o',
    status: 200,
    outcome: 'served',
    promptTokens: 10,
    completionTokens: 5,
    totalTokens: 15,
    cachedTokens: 0,
    reasoningTokens: 0,
    usdMicros: 300,
    unpriced: false,
    estimated: false,
    latencyMs: 42,
    stream: false,
    tags: [],
    ...overrides,
  };
}
