import type { Backend, BackendCall } from '../backends/backend.js';

/** Where loadModuleBackend leaves what it observes of the module, for the contract suite. */
const OBSERVED = Symbol.for('tollgate.testing.observed-module');

/**
 * What the contract suite can see of a module behind the containment, which answers for it (a
 * 502 for a throw, the client-gone error on an abort) and keeps its words in the gateway's log.
 */
export interface ModuleObservation {
  /** Resolves once every promise of the module's for `call` (its send(), its body's next()) settled. */
  settled(call: BackendCall): Promise<void>;
  /** The warnings and errors logged about the module so far, one text per line, oldest first. */
  logged(): readonly string[];
}

export function observe(backend: Backend, observation: ModuleObservation): Backend {
  Object.defineProperty(backend, OBSERVED, { value: observation });
  return backend;
}

/** What loadModuleBackend observes of `backend`; undefined for any other backend. */
export function observationOf(backend: Backend): ModuleObservation | undefined {
  return (backend as Backend & { [OBSERVED]?: ModuleObservation })[OBSERVED];
}
