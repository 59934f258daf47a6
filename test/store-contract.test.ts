import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hashKey, sortableId } from '../src/registry/key-material.js';
import type { AuditEvent, KeyRecord, Page } from '../src/registry/records.js';
import { RedisStore } from '../src/store/redis-store.js';
import type { RegistryStore } from '../src/store/registry-store.js';
import type { Store } from '../src/store/store.js';
import { keyRecord, teamRecord } from './support/registry-records.js';
import { storeSubjects } from './support/store-subjects.js';

const stores = storeSubjects({ clearBeforeEach: true, sentinel: true });
const subjects = stores.subjects;

beforeAll(stores.start);
afterAll(stores.stop);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const team = teamRecord;
const key = keyRecord;

const secretHash = () => hashKey(sortableId('tg-secret-', 16));

function auditEvent(id = sortableId('aud_')): AuditEvent {
  return {
    id,
    createdAt: Date.now(),
    actor: 'admin',
    action: 'team.create',
    targetType: 'team',
    targetId: 'team_x',
    before: null,
    after: { name: 'x' },
  };
}

/** Every id, following `after` cursors page by page; also returns each page's hasMore. */
async function walk<T extends { id: string }>(
  list: (after: string | undefined) => Promise<Page<T>>,
): Promise<{ ids: string[]; hasMore: boolean[] }> {
  const ids: string[] = [];
  const hasMore: boolean[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await list(after);
    ids.push(...page.items.map((item) => item.id));
    hasMore.push(page.hasMore);
    if (!page.hasMore) return { ids, hasMore };
    after = page.items.at(-1)?.id;
  }
  throw new Error('paging did not end');
}

const sortedIds = (items: Array<{ id: string }>) => items.map((item) => item.id).sort();

/**
 * The Store as a whole (ping, close) and its registry sub-store (`store.registry`); the other
 * sub-stores have contract suites of their own (quota-contract, usage-store-contract,
 * cache-store-contract).
 */
describe.each(subjects)('Store contract: $name', (subject) => {
  let store: Store | undefined;

  beforeEach(async (context) => {
    store = await subject.open();
    if (!store) context.skip(`${subject.name}: not available here (see the notice above)`);
  });

  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  /** The store of the running test (beforeEach skipped the test if there is none). */
  const s = (): Store => {
    if (!store) throw new Error('no store');
    return store;
  };
  /** The registry sub-store of the running test's store. */
  const r = (): RegistryStore => s().registry;

  it('answers ping while open and refuses at once when closed', async () => {
    await expect(s().ping()).resolves.toBeUndefined();
    await s().close();
    const started = Date.now();
    await expect(s().ping()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('gives rate limiters counters every instance shares (Redis), or none of its own (memory)', async () => {
    const prefix = `tg:rate-contract:${sortableId('', 6)}:`;
    if (subject.name === 'MemoryStore') {
      expect(s().rateLimitStore(prefix)).toBeUndefined();
      return;
    }
    const hit = (store: Store) =>
      new Promise<{ current: number; ttl: number } | undefined>((resolve, reject) => {
        const Counters = store.rateLimitStore(prefix);
        if (!Counters) throw new Error(`${subject.name} has no rate-limit store`);
        new Counters({}).incr(
          'ip:1',
          (error, result) => (error ? reject(error) : resolve(result)),
          60_000,
          10,
        );
      });
    const other = await subject.sibling(s());
    try {
      expect((await hit(s()))?.current).toBe(1);
      // Another instance counts on in the same window.
      const second = await hit(other);
      expect(second?.current).toBe(2);
      expect(second?.ttl).toBeGreaterThan(0);
      expect(second?.ttl).toBeLessThanOrEqual(60_000);
    } finally {
      await other.close();
    }
  });

  describe('teams', () => {
    it('inserts, reads back and hands out copies', async () => {
      const research = team({ name: 'Research', models: ['gpt-*'], metadata: { cost_center: 42 } });
      await r().insertTeam(research);
      const read = await r().getTeam(research.id);
      expect(read).toEqual(research);
      if (read) read.name = 'mutated by a caller';
      expect(await r().getTeam(research.id)).toEqual(research);
      expect(await r().getTeam('team_missing')).toBeUndefined();
    });

    it('lists in id order, page by page', async () => {
      const teams = Array.from({ length: 5 }, (_, i) => team({ name: `t${i}` }));
      // Inserted out of order: the list order is by id, not by insertion.
      for (const t of [...teams].reverse()) await r().insertTeam(t);
      const ids = sortedIds(teams);

      const all = await r().listTeams({ limit: 10 });
      expect(all.items.map((t) => t.id)).toEqual(ids);
      expect(all.hasMore).toBe(false);
      expect(all.items[0]).toEqual(teams.find((t) => t.id === ids[0]));

      const first = await r().listTeams({ limit: 2 });
      expect(first.items.map((t) => t.id)).toEqual(ids.slice(0, 2));
      expect(first.hasMore).toBe(true);
      const second = await r().listTeams({ limit: 2, after: ids[1] });
      expect(second.items.map((t) => t.id)).toEqual(ids.slice(2, 4));
      expect(second.hasMore).toBe(true);
      const last = await r().listTeams({ limit: 2, after: ids[3] });
      expect(last.items.map((t) => t.id)).toEqual(ids.slice(4));
      expect(last.hasMore).toBe(false);

      // A page that ends exactly at the last item has nothing more.
      expect((await r().listTeams({ limit: 5 })).hasMore).toBe(false);
      expect(await r().listTeams({ limit: 3, after: ids[4] })).toEqual({ items: [], hasMore: false });
      // The cursor need not exist any more (its team was deleted between pages).
      const gone = `${ids[1]}0`;
      expect((await r().listTeams({ limit: 10, after: gone })).items.map((t) => t.id)).toEqual(ids.slice(2));
      expect(await walk((after) => r().listTeams({ limit: 2, after }))).toEqual({
        ids,
        hasMore: [true, true, false],
      });
    });

    it('updates and deletes', async () => {
      const research = team();
      const other = team({ name: 'Other' });
      await r().insertTeam(research);
      await r().insertTeam(other);
      const renamed = {
        ...research,
        name: 'Renamed',
        models: ['a', 'b/*'],
        updatedAt: research.updatedAt + 1,
      };
      await r().updateTeam(renamed);
      expect(await r().getTeam(research.id)).toEqual(renamed);
      expect((await r().listTeams({ limit: 10 })).items).toContainEqual(renamed);

      await r().deleteTeam(research.id);
      expect(await r().getTeam(research.id)).toBeUndefined();
      expect((await r().listTeams({ limit: 10 })).items).toEqual([other]);
      await expect(r().deleteTeam('team_missing')).resolves.toBeUndefined();
    });
  });

  describe('keys', () => {
    it('inserts, reads by id and by hash, and lists by team and overall in id order', async () => {
      const a = team();
      const b = team();
      await r().insertTeam(a);
      await r().insertTeam(b);
      const aKeys = Array.from({ length: 5 }, () => key(a.id));
      const bKeys = Array.from({ length: 2 }, () =>
        key(b.id, { models: ['gpt-4o'], name: 'ci', owner: 'ops' }),
      );
      for (const k of [...aKeys, ...bKeys].reverse()) await r().insertKey(k);

      const first = aKeys[0]!;
      expect(await r().getKey(first.id)).toEqual(first);
      expect(await r().findKeyByHash(first.hash)).toEqual(first);
      expect(await r().findKeyByHash(bKeys[1]!.hash)).toEqual(bKeys[1]);
      expect(await r().getKey('missing')).toBeUndefined();
      expect(await r().findKeyByHash(secretHash())).toBeUndefined();

      const byTeam = await walk((after) => r().listKeys({ teamId: a.id, limit: 2, after }));
      expect(byTeam).toEqual({ ids: sortedIds(aKeys), hasMore: [true, true, false] });
      const teamB = await r().listKeys({ teamId: b.id, limit: 10 });
      expect(teamB.items).toEqual([...bKeys].sort((x, y) => (x.id < y.id ? -1 : 1)));
      expect(teamB.hasMore).toBe(false);
      const all = await walk((after) => r().listKeys({ limit: 3, after }));
      expect(all).toEqual({ ids: sortedIds([...aKeys, ...bKeys]), hasMore: [true, true, false] });
      expect(await r().listKeys({ teamId: 'team_missing', limit: 10 })).toEqual({
        items: [],
        hasMore: false,
      });
    });

    it('updateKey is a compare-and-set: a stale `previous` changes nothing', async () => {
      const t = team();
      await r().insertTeam(t);
      const original = key(t.id);
      await r().insertKey(original);

      const renamed: KeyRecord = { ...original, name: 'first writer', updatedAt: original.updatedAt + 1 };
      expect(await r().updateKey(renamed, original)).toBe(true);
      expect(await r().getKey(original.id)).toEqual(renamed);

      // A second admin read `original` before the first write landed: refused, nothing applied,
      // not even its hash change.
      const stale: KeyRecord = { ...original, name: 'second writer', hash: secretHash(), disabled: true };
      expect(await r().updateKey(stale, original)).toBe(false);
      expect(await r().getKey(original.id)).toEqual(renamed);
      expect(await r().findKeyByHash(stale.hash)).toBeUndefined();
      expect(await r().findKeyByHash(original.hash)).toEqual(renamed);
      expect((await r().listKeys({ limit: 10 })).items).toEqual([renamed]);

      // Re-read and retry: applies.
      const current = (await r().getKey(original.id))!;
      const retried = { ...current, disabled: true };
      expect(await r().updateKey(retried, current)).toBe(true);
      expect(await r().getKey(original.id)).toEqual(retried);

      // No record at all: nothing to compare with, nothing created.
      const phantom = key(t.id);
      expect(await r().updateKey(phantom, phantom)).toBe(false);
      expect(await r().getKey(phantom.id)).toBeUndefined();
      expect(await r().findKeyByHash(phantom.hash)).toBeUndefined();
    });

    it('rotation: the new hash resolves, a retired one until its `until` and not after', async () => {
      const t = team();
      await r().insertTeam(t);
      const original = key(t.id);
      await r().insertKey(original);

      const graceMs = 300;
      const until = Date.now() + graceMs;
      const rotated: KeyRecord = {
        ...original,
        hash: secretHash(),
        retiredHashes: [{ hash: original.hash, until }],
        updatedAt: original.updatedAt + 1,
      };
      expect(await r().updateKey(rotated, original)).toBe(true);
      expect(await r().findKeyByHash(rotated.hash)).toEqual(rotated);
      expect(await r().findKeyByHash(original.hash)).toEqual(rotated);

      // Rotating again within the grace keeps the first retired secret (with its own `until`)
      // and retires the second for longer.
      const again: KeyRecord = {
        ...rotated,
        hash: secretHash(),
        retiredHashes: [...rotated.retiredHashes, { hash: rotated.hash, until: Date.now() + 60_000 }],
      };
      expect(await r().updateKey(again, rotated)).toBe(true);
      for (const hash of [original.hash, rotated.hash, again.hash])
        expect(await r().findKeyByHash(hash)).toEqual(again);

      await sleep(until - Date.now() + 50);
      expect(await r().findKeyByHash(original.hash)).toBeUndefined();
      expect(await r().findKeyByHash(rotated.hash)).toEqual(again);
      expect(await r().findKeyByHash(again.hash)).toEqual(again);

      // Rotation without grace (or a grace already over): the old secret stops at once.
      const abrupt: KeyRecord = {
        ...again,
        hash: secretHash(),
        retiredHashes: [{ hash: again.hash, until: Date.now() - 1 }],
      };
      expect(await r().updateKey(abrupt, again)).toBe(true);
      expect(await r().findKeyByHash(again.hash)).toBeUndefined();
      // A retired secret left out of the next record is dropped from the index too.
      expect(await r().findKeyByHash(rotated.hash)).toBeUndefined();
      expect(await r().findKeyByHash(abrupt.hash)).toEqual(abrupt);
    });

    it('a revoked key still resolves by hash (auth decides what to tell the caller)', async () => {
      const t = team();
      await r().insertTeam(t);
      const original = key(t.id);
      await r().insertKey(original);
      const rotated: KeyRecord = {
        ...original,
        hash: secretHash(),
        retiredHashes: [{ hash: original.hash, until: Date.now() + 60_000 }],
      };
      expect(await r().updateKey(rotated, original)).toBe(true);

      const now = Date.now();
      const revoked: KeyRecord = { ...rotated, revokedAt: now, retiredHashes: [], updatedAt: now };
      expect(await r().updateKey(revoked, rotated)).toBe(true);
      expect(await r().findKeyByHash(revoked.hash)).toEqual(revoked);
      // Revocation ends the grace of retired secrets.
      expect(await r().findKeyByHash(original.hash)).toBeUndefined();
      expect((await r().listKeys({ teamId: t.id, limit: 10 })).items).toEqual([revoked]);
    });

    it('records last use, batched, and never moves it backwards', async () => {
      const t = team();
      await r().insertTeam(t);
      const [a, b, c] = [key(t.id), key(t.id), key(t.id)];
      for (const k of [a, b, c]) await r().insertKey(k);

      expect(await r().lastUsed([a.id, b.id, c.id])).toEqual(new Map());
      await r().touchKeys(new Map());
      await r().touchKeys(
        new Map([
          [a.id, 1_700_000_000_000],
          [b.id, 1_700_000_000_500],
        ]),
      );
      expect(await r().lastUsed([a.id, b.id, c.id])).toEqual(
        new Map([
          [a.id, 1_700_000_000_000],
          [b.id, 1_700_000_000_500],
        ]),
      );
      // Another instance flushing an older batch later must not undo a newer use.
      await r().touchKeys(
        new Map([
          [a.id, 1_600_000_000_000],
          [b.id, 1_700_000_009_999],
        ]),
      );
      expect(await r().lastUsed([a.id, b.id])).toEqual(
        new Map([
          [a.id, 1_700_000_000_000],
          [b.id, 1_700_000_009_999],
        ]),
      );
      expect(await r().lastUsed([])).toEqual(new Map());
      expect(await r().lastUsed(['missing'])).toEqual(new Map());
    });
  });

  describe('audit', () => {
    it('appends and lists in id order, page by page', async () => {
      const events = Array.from({ length: 5 }, () => auditEvent());
      for (const event of events) await r().appendAudit(event);
      const ids = sortedIds(events);

      const all = await r().listAudit({ limit: 10 });
      expect(all.items).toEqual([...events].sort((x, y) => (x.id < y.id ? -1 : 1)));
      expect(all.hasMore).toBe(false);
      expect(await walk((after) => r().listAudit({ limit: 2, after }))).toEqual({
        ids,
        hasMore: [true, true, false],
      });
      expect(await r().listAudit({ limit: 2, after: ids[4] })).toEqual({ items: [], hasMore: false });
    });

    it('orders events of the same millisecond by id too, so paging visits each once', async () => {
      // Two events in one millisecond: sortableId's random tail decides their order, which
      // need not match the order they were appended in.
      const time = Date.now().toString(36).padStart(9, '0');
      const later = auditEvent(`aud_${time}zzzzzzzz`);
      const earlier = auditEvent(`aud_${time}aaaaaaaa`);
      await r().appendAudit(later);
      await r().appendAudit(earlier);
      expect((await r().listAudit({ limit: 10 })).items.map((e) => e.id)).toEqual([earlier.id, later.id]);
      expect(await walk((after) => r().listAudit({ limit: 1, after }))).toEqual({
        ids: [earlier.id, later.id],
        hasMore: [true, false],
      });
    });
  });

  describe('settings', () => {
    it('sets a value only if absent and returns what is stored', async () => {
      expect(await r().setSettingIfAbsent('admin_key_sha256', 'first')).toBe('first');
      expect(await r().setSettingIfAbsent('admin_key_sha256', 'second')).toBe('first');
      expect(await r().setSettingIfAbsent('other', 'third')).toBe('third');
    });
  });
});

describe('RedisStore when Redis is unreachable', () => {
  it('fails ping quickly instead of queueing behind reconnects', async () => {
    const store = new RedisStore({ target: { url: 'redis://127.0.0.1:1' } });
    try {
      await expect(store.ping()).rejects.toThrow();
    } finally {
      await store.close();
    }
  });
});
