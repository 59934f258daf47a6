import { hashKey, sortableId } from '../../src/registry/key-material.js';
import type { KeyRecord, TeamRecord } from '../../src/registry/records.js';

/** A team record as the admin API would store it, with `overrides` on top. */
export function teamRecord(overrides: Partial<TeamRecord> = {}): TeamRecord {
  const now = Date.now();
  return {
    id: sortableId('team_'),
    name: 'Research',
    models: ['*'],
    defaultKeyPolicy: null,
    metadata: {},
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}

/** A key record; unless `overrides` gives one, the hash is of a made-up plaintext. */
export function keyRecord(teamId: string, overrides: Partial<KeyRecord> = {}): KeyRecord {
  const now = Date.now();
  return {
    id: sortableId('', 6),
    teamId,
    name: null,
    owner: null,
    models: null,
    expiresAt: null,
    disabled: false,
    revokedAt: null,
    metadata: {},
    createdAt: now,
    updatedAt: now,
    hash: hashKey(sortableId('tg-secret-', 16)),
    retiredHashes: [],
    ...overrides,
  };
}
