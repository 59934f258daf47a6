import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load-config.js';
import { QuotaStage } from '../src/pipeline/quota.js';
import { dayFormatter, isKnownTimeZone } from '../src/quota/budget-day.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { seededRandom } from './support/seeded-random.js';

/** The day in `zone` as Intl gives it: what every budget day was before the UTC shortcut. */
function intlDay(zone: string, ms: number): string {
  return new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(ms);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('budget days', () => {
  it('UTC days are the ones Intl gives, at midnight and at random instants', () => {
    const utc = dayFormatter('UTC');
    const midnight = Date.UTC(2026, 11, 31);
    for (const ms of [midnight - 1, midnight, midnight + 1, Date.UTC(2028, 1, 29, 23, 59, 59, 999)])
      expect(utc(ms)).toBe(intlDay('UTC', ms));
    const random = seededRandom(7);
    for (let i = 0; i < 500; i++) {
      const ms = Math.floor(random() * Date.UTC(2100, 0, 1));
      expect(utc(ms)).toBe(intlDay('UTC', ms));
    }
  });

  it('the other spellings of UTC are UTC; other zones count in their own days', () => {
    const ms = Date.UTC(2026, 2, 1, 3, 0); // 1 March, 03:00 UTC: still 28 February in New York
    for (const zone of ['utc', 'Etc/UTC', 'etc/utc']) expect(dayFormatter(zone)(ms)).toBe('2026-03-01');
    expect(dayFormatter('America/New_York')(ms)).toBe('2026-02-28');
    expect(dayFormatter('Asia/Tokyo')(Date.UTC(2026, 1, 28, 15, 30))).toBe('2026-03-01');
  });

  it('knows IANA zones and refuses made-up ones, in the config too', () => {
    expect(isKnownTimeZone('UTC')).toBe(true);
    expect(isKnownTimeZone('Europe/Paris')).toBe(true);
    expect(isKnownTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(() => dayFormatter('Mars/Olympus_Mons')).toThrow(RangeError);
    let problems: string[] = [];
    try {
      parseConfig({ quota: { timeZone: 'Mars/Olympus_Mons' } }, {}, 'test');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems = error.problems;
    }
    expect(problems.join('\n')).toMatch(/quota\.timeZone.*expected an IANA time zone/);
  });

  it('with the default (UTC) neither the config nor the quota stage touches Intl', async () => {
    // The first DateTimeFormat of a process maps ~6 MB of ICU data for good: the default must not.
    const spy = vi.spyOn(Intl, 'DateTimeFormat');
    const config = loadConfig({ env: {} });
    const store = await MemoryStore.open();
    const quota = new QuotaStage(store, config.quota, () => Date.UTC(2026, 11, 5, 12));
    const standing = await quota.standing('t1', 'team:t1', {}, [{ period: 'day', max_tokens: 1_000 }]);
    expect(standing).toMatchObject({ budgets: [{ period: 'day', period_key: '2026-12-05' }] });
    expect(spy).not.toHaveBeenCalled();
    await store.close();
  });
});
