/**
 * A time during which a store's connection cannot be used (Redis down, unreachable, in the wrong
 * database, or not answering): from the first command refused for it until the connection is
 * usable again. Every refusal made meanwhile carries it (StoreUnavailableError.outage), so the
 * outage can be said once when it starts and once when it is over, rather than once per request.
 */
export class StoreOutage {
  /** When the first command was refused for it (Date.now()). */
  readonly since = Date.now();
  /** Resolves once the connection is usable again; never when the gateway stops first. */
  readonly over: Promise<void>;
  private resolveOver: () => void = () => {};

  /** `reason`: which store and why, for the operator (never a password). */
  constructor(readonly reason: string) {
    this.over = new Promise((resolve) => {
      this.resolveOver = resolve;
    });
  }

  end(): void {
    this.resolveOver();
  }
}

/**
 * The outage under way on each connection, by its client: the store layer turns a failed
 * command into a StoreUnavailableError knowing only the client it ran on (see asStoreError).
 */
const current = new WeakMap<object, () => StoreOutage | undefined>();

/** `outage` tells, when a command on `client` was refused, which outage that is part of (if any). */
export function trackOutages(client: object, outage: () => StoreOutage | undefined): void {
  current.set(client, outage);
}

/** The outage a command refused on `client` now is part of; none when the connection is usable. */
export function outageOf(client: object): StoreOutage | undefined {
  return current.get(client)?.();
}
