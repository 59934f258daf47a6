import type { Backend } from '../backend.js';
import type { DiscoverySnapshot } from './model-discovery.js';

/** A backend that probes its server and keeps the server's model list (the local-server presets). */
export interface DiscoveringBackend extends Backend {
  /** What the last probe found, without probing. */
  discoveryState(): DiscoverySnapshot;
  /** Probes now and answers with what it found (the admin API's refresh). */
  refreshModels(): Promise<DiscoverySnapshot>;
}

/**
 * The discovering backend behind `backend`, looking through wrappers that keep theirs as
 * `inner` (the Responses translation wraps presets without /v1/responses); undefined for others.
 */
export function discoveringBackendOf(backend: Backend): DiscoveringBackend | undefined {
  let current: Backend | undefined = backend;
  for (let depth = 0; current && depth < 8; depth++) {
    const candidate = current as Partial<DiscoveringBackend>;
    if (typeof candidate.discoveryState === 'function' && typeof candidate.refreshModels === 'function')
      return current as DiscoveringBackend;
    const inner: unknown = (current as { inner?: unknown }).inner;
    current = isBackend(inner) ? inner : undefined;
  }
  return undefined;
}

function isBackend(value: unknown): value is Backend {
  return typeof (value as Partial<Backend> | null)?.send === 'function';
}

/** A backend's availability as `GET /admin/deployments` and `/readyz` show it. */
export interface AvailabilityView {
  /** `unknown`: not probed yet (routing still tries it). */
  state: 'available' | 'unavailable' | 'unknown';
  /** Unavailable: how long until it is probed (or asked) again. */
  retry_after_ms: number | null;
  /** When its server was last probed (ISO 8601); null for a backend that does not probe. */
  checked_at: string | null;
  /** Why it is unavailable, in words that name no address. */
  reason: string | null;
}

/**
 * The availability of a backend that can be unavailable (one with `unavailableForMs`); undefined
 * for the others, which are always tried and judged by their circuits alone. A backend that does
 * not probe a server of its own (a module, an in-process model) has one only while it says it is
 * unavailable: "available" would claim a check it never made (its `/readyz` health check may
 * well be failing), so it says nothing rather than contradict `/readyz`.
 */
export function availabilityOf(backend: Backend): AvailabilityView | undefined {
  if (!backend.unavailableForMs) return undefined;
  const waitMs = backend.unavailableForMs();
  const probed = discoveringBackendOf(backend)?.discoveryState();
  if (!probed && waitMs === undefined) return undefined;
  const checkedAt = probed?.checkedAt === undefined ? null : new Date(probed.checkedAt).toISOString();
  if (waitMs !== undefined)
    return {
      state: 'unavailable',
      retry_after_ms: waitMs,
      checked_at: checkedAt,
      reason: probed?.error ?? null,
    };
  return {
    state: probed?.state === 'unknown' ? 'unknown' : 'available',
    retry_after_ms: null,
    checked_at: checkedAt,
    reason: null,
  };
}
