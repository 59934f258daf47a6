/**
 * `import … from 'tollgate/testing'`: the Backend contract suite, for vitest, and a loader that
 * gives it a module backend as the gateway runs it. Test code only: it imports vitest, so
 * nothing the gateway runs may import this folder.
 */
export { type BackendContractOptions, type ContractTrigger, runBackendContract } from './backend-contract.js';
export type { ContractValidators } from './contract-shapes.js';
export { type LoadModuleSettings, loadModuleBackend } from './module-under-test.js';
