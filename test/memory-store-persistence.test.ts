import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashKey, sortableId } from '../src/registry/key-material.js';
import type { AuditEvent, KeyRecord, TeamRecord } from '../src/registry/records.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { keyRecord, teamRecord } from './support/registry-records.js';

/** The file MemoryStore keeps its state in (see memory-store.ts). */
const FILE_NAME = 'tollgate-state.json';

let root: string;
let dataDir: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'tollgate-memory-store-'));
  // Not created yet: open() makes it (private to the gateway's user).
  dataDir = join(root, 'data');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function team(name: string): TeamRecord {
  return teamRecord({
    name,
    models: ['gpt-*'],
    defaultKeyPolicy: { models: ['gpt-4o'], expires_in_seconds: 3600 },
    metadata: { cost_center: 7 },
  });
}

function key(teamId: string, overrides: Partial<KeyRecord> = {}): KeyRecord {
  return keyRecord(teamId, {
    name: 'ci',
    owner: 'ops@example.com',
    hash: hashKey(sortableId('tg-plain-', 16)),
    ...overrides,
  });
}

function auditEvent(targetId: string): AuditEvent {
  return {
    id: sortableId('aud_'),
    createdAt: Date.now(),
    actor: 'admin',
    action: 'team.create',
    targetType: 'team',
    targetId,
    before: null,
    after: { id: targetId },
  };
}

describe('MemoryStore persistence', () => {
  it('keeps teams, keys (and their hash index), audit, settings and last use across restarts', async () => {
    const first = await MemoryStore.open({ dataDir });
    const research = team('Research');
    const ops = team('Ops');
    await first.registry.insertTeam(research);
    await first.registry.insertTeam(ops);
    const renamedOps = { ...ops, name: 'Operations' };
    await first.registry.updateTeam(renamedOps);
    const plain = key(research.id);
    const rotatedFrom = key(research.id);
    const revokedKey = key(ops.id);
    for (const k of [plain, rotatedFrom, revokedKey]) await first.registry.insertKey(k);
    const rotated: KeyRecord = {
      ...rotatedFrom,
      hash: hashKey('tg-new-secret'),
      retiredHashes: [{ hash: rotatedFrom.hash, until: Date.now() + 60_000 }],
    };
    expect(await first.registry.updateKey(rotated, rotatedFrom)).toBe(true);
    const revoked: KeyRecord = { ...revokedKey, revokedAt: Date.now() };
    expect(await first.registry.updateKey(revoked, revokedKey)).toBe(true);
    const events = [auditEvent(research.id), auditEvent(ops.id)];
    for (const event of events) await first.registry.appendAudit(event);
    expect(await first.registry.setSettingIfAbsent('admin_key_sha256', 'abc123')).toBe('abc123');
    await first.registry.touchKeys(new Map([[plain.id, 1_700_000_000_000]]));
    await first.close();

    const second = await MemoryStore.open({ dataDir });
    expect(await second.registry.getTeam(research.id)).toEqual(research);
    expect((await second.registry.listTeams({ limit: 10 })).items).toEqual(
      [research, renamedOps].sort((a, b) => (a.id < b.id ? -1 : 1)),
    );
    expect(await second.registry.getKey(plain.id)).toEqual(plain);
    expect(await second.registry.findKeyByHash(plain.hash)).toEqual(plain);
    expect(await second.registry.findKeyByHash(rotated.hash)).toEqual(rotated);
    expect(await second.registry.findKeyByHash(rotatedFrom.hash)).toEqual(rotated);
    expect(await second.registry.findKeyByHash(revoked.hash)).toEqual(revoked);
    expect(
      (await second.registry.listKeys({ teamId: research.id, limit: 10 })).items.map((k) => k.id),
    ).toEqual([plain.id, rotated.id].sort());
    expect((await second.registry.listAudit({ limit: 10 })).items).toEqual(
      [...events].sort((a, b) => (a.id < b.id ? -1 : 1)),
    );
    expect(await second.registry.setSettingIfAbsent('admin_key_sha256', 'other')).toBe('abc123');
    expect(await second.registry.lastUsed([plain.id, rotated.id])).toEqual(
      new Map([[plain.id, 1_700_000_000_000]]),
    );

    // Deletions persist too.
    await second.registry.deleteTeam(ops.id);
    await second.close();
    const third = await MemoryStore.open({ dataDir });
    expect(await third.registry.getTeam(ops.id)).toBeUndefined();
    expect(await third.registry.getTeam(research.id)).toEqual(research);
    await third.close();
  });

  it('keeps its data file private: mode 0600 in a 0700 directory', async () => {
    const store = await MemoryStore.open({ dataDir });
    await store.registry.insertTeam(team('Research'));
    await store.registry.setSettingIfAbsent('admin_key_sha256', 'abc123');
    await store.close();
    expect((await stat(join(dataDir, FILE_NAME))).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
  });

  it('never loses the previous good file to a crash mid-write', async () => {
    let crash = false;
    let tempSeenAtCrash: string | undefined;
    const store = await MemoryStore.open({
      dataDir,
      writeHooks: {
        beforeRename: async () => {
          if (!crash) return;
          // The new state is fully written to its temporary file; the "crash" comes before
          // the rename that would have made it the data file.
          const temps = (await readdir(dataDir)).filter((name) => name.endsWith('.tmp'));
          expect(temps).toHaveLength(1);
          tempSeenAtCrash = await readFile(join(dataDir, temps[0]!), 'utf8');
          throw new Error('simulated crash before rename');
        },
      },
    });
    const kept = team('Kept');
    const keptKey = key(kept.id);
    await store.registry.insertTeam(kept);
    await store.registry.insertKey(keptKey);
    const good = await readFile(join(dataDir, FILE_NAME), 'utf8');

    crash = true;
    const lost = team('Lost');
    await expect(store.registry.insertTeam(lost)).rejects.toThrow('simulated crash before rename');
    expect(JSON.parse(tempSeenAtCrash ?? '{}').teams).toContainEqual(lost);
    await store.close();

    // A process killed halfway through writing its temporary file leaves a torn one behind.
    await writeFile(join(dataDir, `.${FILE_NAME}.99999.deadbeef.tmp`), good.slice(0, good.length / 2), {
      mode: 0o600,
    });

    expect(await readFile(join(dataDir, FILE_NAME), 'utf8')).toBe(good);
    const reopened = await MemoryStore.open({ dataDir });
    expect(await reopened.registry.getTeam(kept.id)).toEqual(kept);
    expect(await reopened.registry.getTeam(lost.id)).toBeUndefined();
    expect(await reopened.registry.findKeyByHash(keptKey.hash)).toEqual(keptKey);
    expect((await reopened.registry.listTeams({ limit: 10 })).items).toEqual([kept]);

    // And the next successful write carries on from the good state.
    const next = team('Next');
    await reopened.registry.insertTeam(next);
    await reopened.close();
    const after = await MemoryStore.open({ dataDir });
    expect((await after.registry.listTeams({ limit: 10 })).items.map((t) => t.name).sort()).toEqual([
      'Kept',
      'Next',
    ]);
    await after.close();
  });

  it.each([
    ['truncated JSON', '{"version":1,"teams":[{"id":"team_'],
    ['an empty file', ''],
    ['JSON of the wrong shape', '{"hello":"world"}'],
  ])('refuses to open over a corrupted data file (%s) rather than start empty', async (_what, content) => {
    const store = await MemoryStore.open({ dataDir });
    await store.registry.insertTeam(team('Research'));
    await store.close();
    await writeFile(join(dataDir, FILE_NAME), content, { mode: 0o600 });
    await expect(MemoryStore.open({ dataDir })).rejects.toThrow();
  });
});
