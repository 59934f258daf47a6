import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CachedAnswer, CacheStore } from '../src/store/cache-store.js';
import { MemoryCacheStore } from '../src/store/memory-cache-store.js';
import type { Store } from '../src/store/store.js';
import { scanKeys } from './support/redis-cluster.js';
import { storeSubjects } from './support/store-subjects.js';

const stores = storeSubjects({ clearBeforeEach: true });
const subjects = stores.subjects;

beforeAll(stores.start);
afterAll(stores.stop);

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const MINUTE = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newHash = () => randomBytes(32).toString('hex');
const answer = (text: string | Buffer, model = 'gpt-test', createdAt = T0): CachedAnswer => ({
  body: typeof text === 'string' ? Buffer.from(text) : text,
  createdAt,
  model,
});

describe.each(subjects)('Cache store contract: $name', (subject) => {
  let store: Store | undefined;
  const extra: Store[] = [];

  beforeEach(async (context) => {
    store = await subject.open();
    if (!store) context.skip(`${subject.name}: not available here (see the notice above)`);
  });

  afterEach(async () => {
    await Promise.all([store?.close(), ...extra.splice(0).map((s) => s.close())]);
    store = undefined;
  });

  const c = (): CacheStore => {
    if (!store) throw new Error('no store');
    return store.cache;
  };
  const sibling = async (): Promise<CacheStore> => {
    const other = await subject.sibling(store as Store);
    if (other !== store) extra.push(other);
    return other.cache;
  };

  describe('entries', () => {
    it('round-trips the exact bytes, including non-ASCII and a 1 MB body', async () => {
      const text = Buffer.from('{"content":"héllo — 你好 🚀"}');
      const binary = Buffer.concat([Buffer.from([0, 255, 254, 0x80, 0xc3]), randomBytes(1024 * 1024)]);
      await c().set('team:a', 'h1', answer(text, 'gpt-ü', T0 - 5), MINUTE, T0);
      await c().set('team:a', 'h2', answer(binary), MINUTE, T0);
      const first = await c().get('team:a', 'h1', T0);
      expect(first).toEqual({ body: text, createdAt: T0 - 5, model: 'gpt-ü' });
      expect(first?.body.equals(text)).toBe(true);
      const second = await c().get('team:a', 'h2', T0 + 1);
      expect(second?.body.length).toBe(binary.length);
      expect(second?.body.equals(binary)).toBe(true);
    });

    it('answers undefined for a missing entry', async () => {
      expect(await c().get('team:a', newHash(), T0)).toBeUndefined();
    });

    it('expires at the caller clock: a hit at ttl - 1, a miss at ttl', async () => {
      await c().set('team:a', 'h', answer('x'), 1_000, T0);
      expect(await c().get('team:a', 'h', T0 + 999)).toBeDefined();
      expect(await c().get('team:a', 'h', T0 + 1_000)).toBeUndefined();
    });

    it('keeps scopes apart and replaces an entry', async () => {
      await c().set('team:a', 'same', answer('for a'), MINUTE, T0);
      await c().set('key:b', 'same', answer('for b'), MINUTE, T0);
      expect((await c().get('team:a', 'same', T0))?.body.toString()).toBe('for a');
      expect((await c().get('key:b', 'same', T0))?.body.toString()).toBe('for b');
      expect(await c().get('global', 'same', T0)).toBeUndefined();

      await c().set('team:a', 'same', answer('again', 'other-model', T0 + 10), MINUTE, T0 + 10);
      expect(await c().get('team:a', 'same', T0 + 10)).toEqual(answer('again', 'other-model', T0 + 10));
      expect(await c().stats({ scope: 'team:a' }, T0 + 10)).toEqual([
        { scope: 'team:a', entries: 1, bytes: 5 },
      ]);
    });

    it('keeps one scope under one hash tag', async () => {
      const servers = subject.servers();
      if (servers.length === 0) return;
      await c().set('team:t1', 'h', answer('x'), MINUTE, T0);
      const keys = (await Promise.all(servers.map((server) => scanKeys(server, 'tg:*')))).flat().sort();
      expect(
        keys.filter((key) => key !== 'tg:cache:scopes').every((key) => key.startsWith('tg:{c:team:t1}:')),
      ).toBe(true);
      expect(keys).toContain('tg:{c:team:t1}:e:h');
    });
  });

  describe('purge and stats', () => {
    const fill = async () => {
      await c().set('team:a', 'a1', answer('aaaa', 'm1'), MINUTE, T0);
      await c().set('team:a', 'a2', answer('aa', 'm2'), MINUTE, T0);
      await c().set('team:b', 'b1', answer('bbbbbb', 'm1'), MINUTE, T0);
      await c().set('global', 'g1', answer('g', 'm2'), MINUTE, T0);
      // Expired at T0 + 1: present in storage, never counted.
      await c().set('team:b', 'old', answer('expired!', 'm1'), 1, T0);
    };
    const at = T0 + 1;

    it('counts live entries and bytes per scope and for all', async () => {
      await fill();
      expect(await c().stats({}, at)).toEqual([
        { scope: 'global', entries: 1, bytes: 1 },
        { scope: 'team:a', entries: 2, bytes: 6 },
        { scope: 'team:b', entries: 1, bytes: 6 },
      ]);
      expect(await c().stats({ scope: 'team:b' }, at)).toEqual([{ scope: 'team:b', entries: 1, bytes: 6 }]);
      expect(await c().stats({ scope: 'team:none' }, at)).toEqual([
        { scope: 'team:none', entries: 0, bytes: 0 },
      ]);
      // Everything has expired a minute later.
      expect(await c().stats({}, T0 + MINUTE)).toEqual([]);
    });

    it('purges one scope', async () => {
      await fill();
      expect(await c().purge({ scope: 'team:a' }, at)).toBe(2);
      expect(await c().get('team:a', 'a1', at)).toBeUndefined();
      expect(await c().get('team:b', 'b1', at)).toBeDefined();
      expect((await c().stats({}, at)).map((s) => s.scope)).toEqual(['global', 'team:b']);
      expect(await c().purge({ scope: 'team:a' }, at)).toBe(0);
    });

    it('purges one model, in every scope or in one', async () => {
      await fill();
      expect(await c().purge({ model: 'm2', scope: 'team:b' }, at)).toBe(0);
      expect(await c().purge({ model: 'm1' }, at)).toBe(2);
      expect(await c().get('team:a', 'a1', at)).toBeUndefined();
      expect(await c().get('team:b', 'b1', at)).toBeUndefined();
      expect(await c().get('team:a', 'a2', at)).toBeDefined();
      expect(await c().get('global', 'g1', at)).toBeDefined();
      expect(await c().purge({ model: 'm2', scope: 'global' }, at)).toBe(1);
      expect(await c().get('team:a', 'a2', at)).toBeDefined();
    });

    it('purges everything', async () => {
      await fill();
      expect(await c().purge({}, at)).toBe(4);
      expect(await c().stats({}, at)).toEqual([]);
      expect(await c().get('global', 'g1', at)).toBeUndefined();
      // Still usable afterwards.
      await c().set('team:a', 'a1', answer('new'), MINUTE, at);
      expect(await c().stats({}, at)).toEqual([{ scope: 'team:a', entries: 1, bytes: 3 }]);
    });
  });

  describe('coalescing', () => {
    it('lets one caller lead until it releases', async () => {
      const hash = newHash();
      expect(await c().claim('team:a', hash, 5_000)).toBe(true);
      expect(await c().claim('team:a', hash, 5_000)).toBe(false);
      // Another scope or hash is another fill.
      expect(await c().claim('team:b', hash, 5_000)).toBe(true);
      await c().release('team:b', hash, false);
      await c().release('team:a', hash, true);
      expect(await c().claim('team:a', hash, 5_000)).toBe(true);
      await c().release('team:a', hash, false);
    });

    it('lets a new caller lead once a claim has lapsed', async () => {
      const hash = newHash();
      expect(await c().claim('team:a', hash, 50)).toBe(true);
      await sleep(80);
      expect(await c().claim('team:a', hash, 5_000)).toBe(true);
      await c().release('team:a', hash, false);
    });

    it('wakes a waiter with filled, or failed', async () => {
      const hash = newHash();
      await c().claim('team:a', hash, 5_000);
      const waiting = c().waitForFill('team:a', hash, 5_000);
      await sleep(20);
      await c().set('team:a', hash, answer('done'), MINUTE, Date.now());
      await c().release('team:a', hash, true);
      expect(await waiting).toBe('filled');

      const other = newHash();
      await c().claim('team:a', other, 5_000);
      const failing = c().waitForFill('team:a', other, 5_000);
      await sleep(20);
      const started = Date.now();
      await c().release('team:a', other, false);
      expect(await failing).toBe('failed');
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('answers at once when nobody leads', async () => {
      const hash = newHash();
      expect(await c().waitForFill('team:a', hash, 5_000)).toBe('failed');
      await c().set('team:a', hash, answer('there'), MINUTE, Date.now());
      expect(await c().waitForFill('team:a', hash, 5_000)).toBe('filled');
    });

    it('times out when nobody releases', async () => {
      const hash = newHash();
      await c().claim('team:a', hash, 5_000);
      const started = Date.now();
      expect(await c().waitForFill('team:a', hash, 150)).toBe('timeout');
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      await c().release('team:a', hash, false);
    });

    it('answers failed when the leader is lost (its claim lapses)', async () => {
      const hash = newHash();
      await c().claim('team:a', hash, 100);
      const started = Date.now();
      expect(await c().waitForFill('team:a', hash, 3_000)).toBe('failed');
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('wakes waiters on another instance', async () => {
      const other = await sibling();
      const hash = newHash();
      expect(await c().claim('team:a', hash, 5_000)).toBe(true);
      expect(await other.claim('team:a', hash, 5_000)).toBe(false);
      const waiting = other.waitForFill('team:a', hash, 5_000);
      await sleep(20);
      await c().set('team:a', hash, answer('shared'), MINUTE, Date.now());
      await c().release('team:a', hash, true);
      expect(await waiting).toBe('filled');
      expect((await other.get('team:a', hash, Date.now()))?.body.toString()).toBe('shared');

      const failed = newHash();
      await c().claim('team:a', failed, 5_000);
      const failing = other.waitForFill('team:a', failed, 5_000);
      await sleep(20);
      await c().release('team:a', failed, false);
      expect(await failing).toBe('failed');
    });

    it('wakes many concurrent waiters at once', async () => {
      const other = await sibling();
      const hash = newHash();
      await c().claim('team:a', hash, 5_000);
      const waiters = Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? c() : other).waitForFill('team:a', hash, 5_000),
      );
      await sleep(50);
      const started = Date.now();
      await c().set('team:a', hash, answer('many'), MINUTE, Date.now());
      await c().release('team:a', hash, true);
      expect(new Set(await Promise.all(waiters))).toEqual(new Set(['filled']));
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('keeps a live stream in order, readable from the start or after any entry, on another instance too', async () => {
      const other = await sibling();
      const hash = newHash();
      expect(await other.readLive('team:a', hash, '0', 10)).toEqual([]);
      // Only the claim's holder writes.
      await other.appendLive('team:a', hash, [Buffer.from('not the leader')], undefined, 5_000);
      expect(await other.readLive('team:a', hash, '0', 10)).toEqual([]);
      expect(await c().claim('team:a', hash, 5_000)).toBe(true);
      await c().appendLive(
        'team:a',
        hash,
        [Buffer.from('data: 1\n\n'), Buffer.from('data: 2\n\n')],
        undefined,
        5_000,
      );
      const first = await other.readLive('team:a', hash, '0', 10);
      expect(first.map((entry) => entry.block?.toString())).toEqual(['data: 1\n\n', 'data: 2\n\n']);
      await c().appendLive('team:a', hash, [Buffer.from([0xf0, 0x9f, 0x9a, 0x80])], 'complete', 5_000);
      const after = await other.readLive('team:a', hash, first[1]?.id ?? '', 10);
      expect(after).toHaveLength(2);
      expect(after[0]?.block?.equals(Buffer.from([0xf0, 0x9f, 0x9a, 0x80]))).toBe(true);
      expect(after[1]).toMatchObject({ end: 'complete' });
      expect(after[1]?.block).toBeUndefined();
      expect(await other.readLive('team:a', hash, after[1]?.id ?? '', 10)).toEqual([]);
      // Reads are capped; another scope sees nothing.
      expect(await other.readLive('team:a', hash, '0', 1)).toHaveLength(1);
      expect(await other.readLive('team:b', hash, '0', 10)).toEqual([]);
      const broken = newHash();
      await c().claim('team:a', broken, 5_000);
      await c().appendLive('team:a', broken, [], 'broken', 5_000);
      expect(await other.readLive('team:a', broken, '0', 10)).toEqual([
        expect.objectContaining({ end: 'broken' }),
      ]);
      // A new leader starts from an empty record: the last one's leftovers are never followed.
      await c().release('team:a', broken, false);
      expect(await other.claim('team:a', broken, 5_000)).toBe(true);
      expect(await c().readLive('team:a', broken, '0', 10)).toEqual([]);
      await other.release('team:a', broken, false);
    });

    it('answers pending waiters when closed', async () => {
      const hash = newHash();
      await c().claim('team:a', hash, 5_000);
      const waiting = c().waitForFill('team:a', hash, 5_000);
      await sleep(20);
      await c().close();
      expect(await waiting).toBe('failed');
    });
  });
});

describe('MemoryCacheStore byte cap', () => {
  it('evicts the least recently used entries and refuses one larger than the cap', async () => {
    const cache = new MemoryCacheStore({ maxBytes: 10 });
    try {
      await cache.set('s', 'a', answer('aaaa'), MINUTE, T0);
      await cache.set('s', 'b', answer('bbbb'), MINUTE, T0);
      // Reading a makes b the least recently used.
      expect(await cache.get('s', 'a', T0)).toBeDefined();
      await cache.set('s', 'c', answer('cccc'), MINUTE, T0);
      expect(await cache.get('s', 'b', T0)).toBeUndefined();
      expect(await cache.get('s', 'a', T0)).toBeDefined();
      expect(await cache.get('s', 'c', T0)).toBeDefined();
      await cache.set('s', 'big', answer('x'.repeat(11)), MINUTE, T0);
      expect(await cache.get('s', 'big', T0)).toBeUndefined();
      expect(await cache.stats({}, T0)).toEqual([{ scope: 's', entries: 2, bytes: 8 }]);
    } finally {
      await cache.close();
    }
  });
});
