export type BoundedOutcome<T> = { kind: 'value'; value: T } | { kind: 'timeout' } | { kind: 'aborted' };

/**
 * Waits for a module's promise, but no longer than `ms` and no longer than `signal` stays
 * unaborted: a module that ignores its signal or never settles must not hold the gateway.
 * A rejection is passed on. The promise left behind is marked handled, so a module that
 * rejects late cannot crash the process with an unhandled rejection.
 */
export function boundedWait<T>(
  promise: Promise<T>,
  ms: number,
  signal?: AbortSignal,
): Promise<BoundedOutcome<T>> {
  if (signal?.aborted) {
    promise.catch(() => {});
    return Promise.resolve({ kind: 'aborted' });
  }
  return new Promise<BoundedOutcome<T>>((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      finish();
      promise.catch(() => {});
      resolve({ kind: 'aborted' });
    };
    const timer = setTimeout(() => {
      finish();
      promise.catch(() => {});
      resolve({ kind: 'timeout' });
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        finish();
        resolve({ kind: 'value', value });
      },
      (error: unknown) => {
        finish();
        reject(error);
      },
    );
  });
}
