import type { QuotaStore } from '../../src/store/quota-store.js';

/**
 * Which reservations one instance's quota store granted and which it has ended, so a test can
 * read what a team spent once every charge is in, instead of polling for a number: a charge that
 * must not happen (a free cache hit) has then had every chance to, and did not.
 */
export interface QuotaWatch {
  /** Resolves once every reservation granted so far has been settled or released. */
  allEnded(): Promise<void>;
}

/** Watches, from now on, the reservations `quota` grants and ends; the store stays the real one. */
export function watchQuota(quota: QuotaStore): QuotaWatch {
  const open = new Set<string>();
  let waiting: Array<() => void> = [];
  const ended = (reservationId: string) => {
    open.delete(reservationId);
    if (open.size > 0) return;
    const due = waiting;
    waiting = [];
    for (const resolve of due) resolve();
  };
  const admit = quota.admit.bind(quota);
  quota.admit = async (request) => {
    const result = await admit(request);
    if (request.reservation && result.reservation?.granted) open.add(request.reservation.reservationId);
    return result;
  };
  const reserve = quota.reserve.bind(quota);
  quota.reserve = async (request) => {
    const result = await reserve(request);
    if (result.granted) open.add(request.reservationId);
    return result;
  };
  const settle = quota.settle.bind(quota);
  quota.settle = async (teamId, reservationId, actual, nowMs) => {
    try {
      return await settle(teamId, reservationId, actual, nowMs);
    } finally {
      ended(reservationId);
    }
  };
  const release = quota.release.bind(quota);
  quota.release = async (teamId, reservationId, nowMs) => {
    try {
      return await release(teamId, reservationId, nowMs);
    } finally {
      ended(reservationId);
    }
  };
  return {
    allEnded: () =>
      open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiting.push(resolve)),
  };
}
