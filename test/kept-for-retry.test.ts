import { getMaxListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { StreamShutdown } from '../src/http/stream-shutdown.js';
import { KeptForRetry, type KeptWrite } from '../src/store/kept-for-retry.js';
import type { RedisConnection } from '../src/store/redis-connection.js';

/** A connection as KeptForRetry sees it: usable or not, and its signal when it becomes usable. */
function connection(usable: boolean) {
  const listeners: Array<() => void> = [];
  const fake = {
    usable,
    shuttingDown: false,
    onUsable: (listener: () => void) => listeners.push(listener),
  };
  return {
    fake,
    asConnection: fake as unknown as RedisConnection,
    becomeUsable: () => {
      for (const listener of listeners) listener();
    },
  };
}

function write(until = performance.now() + 60_000): KeptWrite & { lostWith: string[] } {
  const lostWith: string[] = [];
  return { until, lostWith, lost: (error) => lostWith.push(error.message) };
}

describe('KeptForRetry', () => {
  it('keeps writes while the connection is unusable, resends them once it is, oldest dropped past the limit', () => {
    const { fake, asConnection, becomeUsable } = connection(false);
    const resent: KeptWrite[] = [];
    const kept = new KeptForRetry(asConnection, {
      limit: 2,
      overLimit: 'too many',
      expired: 'too late',
      resend: (w) => resent.push(w),
    });
    const [a, b, c] = [write(), write(), write()];
    kept.keep(a);
    kept.keep(b);
    kept.keep(c);
    expect(a.lostWith).toEqual(['too many']);
    fake.usable = true;
    becomeUsable();
    expect(resent).toEqual([b, c]);
  });

  it('a write kept after it gave up (a retry failing again while closing) is lost at once', () => {
    const { asConnection } = connection(true);
    const kept = new KeptForRetry(asConnection, { limit: 10, overLimit: '', expired: '', resend: () => {} });
    kept.giveUp();
    const late = write();
    kept.keep(late);
    expect(late.lostWith).toEqual(['the gateway stopped before Redis answered again']);
  });
});

describe('StreamShutdown', () => {
  it('its one signal takes a listener per stream without a leak warning', () => {
    expect(getMaxListeners(new StreamShutdown().signal)).toBe(0);
  });
});
