import type { Principal } from '../../src/pipeline/auth.js';

/** What ① auth hands the later stages for a team key: no limits unless `overrides` sets some. */
export function keyPrincipal(overrides: Partial<Extract<Principal, { kind: 'key' }>> = {}): Principal {
  return {
    kind: 'key',
    keyId: 'key-1',
    teamId: 'team-1',
    teamName: 'one',
    teamModels: [],
    keyModels: null,
    teamLimits: {},
    teamBudgets: [],
    keyLimits: {},
    keyBudgets: [],
    teamModelLimits: {},
    teamCache: null,
    keyCache: null,
    ...overrides,
  };
}
