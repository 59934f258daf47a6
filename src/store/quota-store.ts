import type {
  AdmitRequest,
  AdmitResult,
  QuotaReservationRequest,
  QuotaReservationResult,
  QuotaScope,
  QuotaScopeStatus,
  QuotaSettleOutcome,
  QuotaUsage,
} from '../quota/quota-types.js';

/**
 * Quotas (see src/quota/quota-types.ts for the semantics), `Store.quota`: one atomic,
 * all-or-nothing reservation of tokens, a concurrency slot and budget over every scope of one
 * team. A memory and a Redis implementation side by side (memory-quota-store.ts,
 * redis-quota-store.ts) and one contract suite (test/quota-contract.test.ts).
 */
export interface QuotaStore {
  /** Counts a request against its request rates and, when asked and they allow it, reserves. */
  admit(request: AdmitRequest): Promise<AdmitResult>;
  /** `admit` without request rates. */
  reserve(request: QuotaReservationRequest): Promise<QuotaReservationResult>;
  /** Replaces the estimate by the actual usage everywhere and frees the slot; repeats are no-ops. */
  settle(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome>;
  /** Refunds the whole reservation (the upstream failed); repeats are no-ops. */
  release(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome>;
  /** What each scope has left now, for response headers and the admin API. */
  status(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]>;
}
