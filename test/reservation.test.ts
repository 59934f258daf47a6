import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Reservation, type ReservationEnds } from '../src/pipeline/reservation.js';
import type { TokenUsage } from '../src/pipeline/usage.js';

/** A reservation whose ends are recorded, failing on request like a store that went away. */
function subject(fail = false) {
  const calls: Array<['settle', TokenUsage | undefined] | ['release']> = [];
  const ends: ReservationEnds = {
    settle: async (usage) => {
      calls.push(['settle', usage]);
      if (fail) throw new Error('store unavailable');
    },
    release: async () => {
      calls.push(['release']);
      if (fail) throw new Error('store unavailable');
    },
  };
  const { lines, log } = capturedLog();
  return { calls, lines, reservation: new Reservation(ends, log, { promptTokens: 7 }) };
}

/** A logger whose lines are kept, parsed. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    {},
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        callback();
      },
    }),
  );
  return { lines, log };
}

describe('a quota reservation handle', () => {
  it('ends once: a second settle, or a release after a settle, does nothing', async () => {
    const { calls, reservation } = subject();
    const usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    await reservation.settle(usage);
    await reservation.settle({ total_tokens: 99 });
    await reservation.release();
    expect(calls).toEqual([['settle', usage]]);
    expect(reservation.promptTokens).toBe(7);
  });

  it('a release first makes a later settle a no-op', async () => {
    const { calls, reservation } = subject();
    await reservation.release();
    await reservation.settle({ total_tokens: 5 });
    expect(calls).toEqual([['release']]);
  });

  it('never rejects into the client path: a store failure is logged as a warning', async () => {
    const { lines, reservation } = subject(true);
    await expect(reservation.settle(undefined)).resolves.toBeUndefined();
    const warning = lines.find((line) => line.msg === 'could not settle a quota reservation');
    expect(warning?.level).toBe(40);
    expect(warning?.error).toEqual({ message: 'store unavailable' });
    const released = subject(true);
    await expect(released.reservation.release()).resolves.toBeUndefined();
    expect(released.lines.some((line) => line.msg === 'could not release a quota reservation')).toBe(true);
  });

  it('without waiting for the store (settles held): ends at once, and a failure is still logged', async () => {
    let fail: (() => void) | undefined;
    const ends: ReservationEnds = {
      // A store that holds the settle: it answers only when told to (here, with a failure).
      settle: () =>
        new Promise<void>((_resolve, reject) => {
          fail = () => reject(new Error('store unavailable'));
        }),
      release: async () => {},
    };
    const { lines, log } = capturedLog();
    const reservation = new Reservation(ends, log, { promptTokens: 7 }, false);
    await expect(reservation.settle(undefined)).resolves.toBeUndefined();
    expect(fail).toBeDefined();
    fail?.();
    // The failure's warning is written from the rejection's handler, before the next turn.
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.find((line) => line.msg === 'could not settle a quota reservation')?.level).toBe(40);
  });

  it('Reservation.none (nothing to reserve) ends without any call', async () => {
    await expect(Reservation.none.settle({ total_tokens: 1 })).resolves.toBeUndefined();
    await expect(Reservation.none.release()).resolves.toBeUndefined();
    expect(Reservation.none.promptTokens).toBeUndefined();
    expect(Reservation.none.tokensPerMinute).toBeUndefined();
  });
});
