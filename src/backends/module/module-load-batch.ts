import { ModuleLoadErrors } from './module-load-error.js';

interface Batch {
  /** Each load's failure, or undefined once it loaded, in the order the loads began. */
  failures: Array<Promise<Error | undefined>>;
  combined?: Promise<Error>;
}

/**
 * Loads begun for one config in one go: the registry calls every factory in one synchronous pass,
 * so the batch closes at the next microtask.
 */
const open = new WeakMap<object, Batch>();

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * `load`, one of the module backends of `config` loaded together at boot. The registry waits for
 * every backend and then throws the first failure in config order; so that a boot with several broken modules says what is wrong
 * with each of them, not one per attempt, a load that fails waits for the others begun with it
 * and fails with all of their problems (one error, the same for each, listing them in config
 * order; a lone failure as it is).
 */
export async function loadedTogether<T>(config: object, load: Promise<T>): Promise<T> {
  let batch = open.get(config);
  if (!batch) {
    const begun: Batch = { failures: [] };
    batch = begun;
    open.set(config, begun);
    // Loads begun later (another registry for the same config) are another boot's.
    queueMicrotask(() => {
      if (open.get(config) === begun) open.delete(config);
    });
  }
  const failure = load.then(
    () => undefined,
    (error: unknown) => asError(error),
  );
  batch.failures.push(failure);
  if ((await failure) === undefined) return load;
  const together = batch;
  together.combined ??= Promise.all(together.failures).then((all) => {
    const failed = all.filter((error): error is Error => error !== undefined);
    return failed.length === 1 ? (failed[0] as Error) : new ModuleLoadErrors(failed);
  });
  throw await together.combined;
}
