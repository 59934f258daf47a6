import {
  type AdmitRequest,
  type AdmitResult,
  EXPIRED_RESERVATION_GRACE_MS,
  nextWindowInMs,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaUsage,
  type RequestRateKind,
  type RequestRateScope,
  type RequestRateWindow,
  scopeStatus,
  tpmWindow,
  validateAdmit,
  validateScopes,
  validateTeamId,
  validateUsage,
} from '../quota/quota-types.js';
import { KeptForRetry, KeptForRetryError } from './kept-for-retry.js';
import { loadLua } from './lua-script.js';
import { pendingOutcome } from './pending-outcome.js';
import { scriptJson } from './quota-script-json.js';
import type { QuotaStore } from './quota-store.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage, isStoreOutage, mayHaveRun } from './store-unavailable.js';
import { TurnBatches } from './turn-batches.js';

/**
 * Quota state of one team is ONE hash, `tg:{q:<team>}:h` (the braces are the Cluster hash tag,
 * so a team is one node while teams spread over all of them). Its fields, per scope id `S`:
 *
 *   q:S        requests this minute: 'start ms,count'     d:S   the same per day
 *   m:S        tokens this minute: 'window,tokens' (window = floor(ms / 60 s))
 *   c:S        concurrency slots in use
 *   b:S:P      budget of period P: 'key,spent T,spent U,reserved T,reserved U' for the current
 *              period key, then the same five for the previous one
 *   r:<id>     a live reservation: its record (which fields it counted in), JSON
 *   next       when the earliest reservation expires (lost processes are reaped then)
 *
 * Each script reads what it needs with one HMGET and writes back with one HSET (and HDEL for
 * finished records), instead of a key per counter with its own expiry: a request with key and
 * team limits and two budgets costs Redis about nine commands in all (admit 3, settle 5, usage 1),
 * against ~60 before, and fewer when admits and settles of one team share a script call (one
 * event-loop turn's, or with settleHoldMs a settle and the next admit: ~4 in all). Counters
 * that carry their window or period in their value need no expiry; nothing grows: records are
 * deleted when they end, expired ones after the grace period.
 */
const hashOf = (teamId: string) => `tg:{q:${teamId}}:h`;

const rateLimited = (s: RequestRateScope) => s.perMinute !== undefined || s.perDay !== undefined;

const TURN = loadLua('quota-lib', 'quota-turn');
const STATUS = loadLua('quota-lib', 'quota-status');

/** Refusal ranks as the admit script numbers them (0: a request rate). */
const REFUSAL_RANKS: QuotaLimitKind[] = ['budget_tokens', 'budget_usd', 'concurrency', 'tokens_per_minute'];
const RATE_KINDS: RequestRateKind[] = ['requests_per_minute', 'requests_per_day'];

/** One settle or release waiting for its team's batch. */
interface FinishItem {
  kind: 'finish';
  reservationId: string;
  actual: QuotaUsage | undefined;
  nowMs: number;
  resolve: (outcome: QuotaSettleOutcome) => void;
  reject: (error: unknown) => void;
  /** Set when this is a retry of one kept during an outage. */
  kept?: KeptEnd | undefined;
}

/** One admit waiting for its team's batch: the script's four arguments for it. */
interface AdmitItem {
  kind: 'admit';
  args: [nowMs: number, reservationId: string, plan: string, record: string];
  /** Its reservation's ttl (0 without one). */
  ttlMs: number;
  resolve: (answer: number[]) => void;
  reject: (error: unknown) => void;
}

/**
 * A settle or release that could not reach Redis (an outage), kept to be sent again once the
 * connection is usable: one lost would hold its slot and reservation until the ttl and leave
 * the spend uncharged. Sending one twice is harmless: the script finishes a reservation once
 * and finds nothing the second time (quota-turn.lua).
 */
interface KeptEnd {
  teamId: string;
  reservationId: string;
  actual: QuotaUsage | undefined;
  nowMs: number;
  /** performance.now() past which sending it is pointless: its reservation has expired. */
  until: number;
  settled: (outcome: QuotaSettleOutcome) => void;
  lost: (error: Error) => void;
}

/**
 * Settles and releases kept for a retry at most: far more than a gateway has in flight, which
 * is what an outage leaves unfinished (new requests are refused while it lasts).
 */
const KEPT_ENDS = 20_000;

type TurnItem = AdmitItem | FinishItem;

/**
 * Admits, settles and releases run by one script call at most (the batch's field names go to one
 * HMGET, and Lua's unpack has a limit on arguments).
 */
const TURN_BATCH = 100;

export interface RedisQuotaStoreOptions {
  /**
   * How long a settle or release may wait to go to Redis with its team's next admit, in one
   * script call (0: at the end of the turn it was asked in). See `quota.settleHoldMs`.
   */
  settleHoldMs?: number;
  /** How many settles and releases are kept for a retry during an outage (tests ask for few). */
  keptEndLimit?: number;
}

export class RedisQuotaStore implements QuotaStore {
  /** Admits, settles and releases asked for in this turn of the event loop, per team. */
  private readonly turn = new TurnBatches<TurnItem>(TURN_BATCH, (teamId, items) => {
    const sending = this.runTurn(teamId, items).finally(() => this.sending.delete(sending));
    this.sending.add(sending);
  });
  /** Script calls made from the batches and not answered yet (runTurn never rejects). */
  private readonly sending = new Set<Promise<void>>();

  /** Settles and releases held for their team's next admit (settleHoldMs > 0), per team, in order. */
  private readonly held = new Map<string, FinishItem[]>();
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly settleHoldMs: number;

  /** Settles and releases kept for a retry (see KeptEnd), oldest first. */
  private readonly kept: KeptForRetry<KeptEnd>;
  /** The longest reservation ttl admitted: how long a kept end may still matter. */
  private longestTtlMs = 0;

  constructor(
    private readonly connection: RedisConnection,
    options: RedisQuotaStoreOptions = {},
  ) {
    this.settleHoldMs = options.settleHoldMs ?? 0;
    const keptEndLimit = options.keptEndLimit ?? KEPT_ENDS;
    this.kept = new KeptForRetry<KeptEnd>(connection, {
      limit: keptEndLimit,
      overLimit: `more than ${keptEndLimit} settles and releases were waiting for Redis`,
      expired: 'its reservation expired before Redis answered again',
      resend: (end) => this.resendEnd(end),
    });
    connection.onClose(() => this.lastAttempt());
    failClosedOnOutage(this, connection.client);
  }

  /**
   * Hands a team's held settles and releases (all teams' when none is named) to the current
   * turn's batches, ahead of whatever that team asks for after them.
   */
  private releaseHeld(teamId?: string): void {
    const teams = teamId === undefined ? [...this.held.keys()] : this.held.has(teamId) ? [teamId] : [];
    for (const team of teams) {
      for (const item of this.held.get(team) ?? []) this.turn.add(team, item);
      this.held.delete(team);
    }
    if (this.held.size === 0 && this.holdTimer) {
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
  }

  /**
   * Sends what is held (for one team, or all) and waits until Redis has answered every batch
   * sent so far, so that what is sent after it (a status read, QUIT) sees them. ioredis sends
   * auto-pipelined commands in a later turn, so having called it is not enough.
   */
  async flush(teamId?: string): Promise<void> {
    this.releaseHeld(teamId);
    if (teamId === undefined || this.turn.has(teamId)) await new Promise((resolve) => setImmediate(resolve));
    await Promise.all(this.sending);
  }

  async admit(request: AdmitRequest): Promise<AdmitResult> {
    validateAdmit(request);
    const { nowMs, reservation } = request;
    // The same list when every scope is limited (QuotaStage's always are), so a sealed one stays
    // itself and its script JSON is written once.
    const requests = request.requests.every(rateLimited)
      ? request.requests
      : request.requests.filter(rateLimited);
    const times = { nowMs, window: tpmWindow(nowMs), retryMs: nextWindowInMs(nowMs) };
    const { plan, record } = scriptJson(requests, reservation, times);
    const ttlMs = reservation?.ttlMs ?? 0;
    if (ttlMs > this.longestTtlMs) this.longestTtlMs = ttlMs;
    const answer = await this.queueAdmit(
      request.teamId,
      [nowMs, reservation?.reservationId ?? '', plan, record],
      ttlMs,
    );
    const at = (i: number) => answer[i] ?? -1;
    const windowAt = (i: number): RequestRateWindow | undefined => {
      const index = at(i);
      const scope = requests[index - 1];
      if (index < 1 || !scope) return undefined;
      return {
        scope: scope.id,
        kind: RATE_KINDS[at(i + 1) - 1] ?? 'requests_per_minute',
        limit: at(i + 2),
        remaining: Math.max(0, at(i + 3)),
        resetMs: Math.max(0, at(i + 4)),
      };
    };
    if (at(0) === 1) {
      const tightest = windowAt(4);
      const counted = { allowed: true as const, ...(tightest ? { tightest } : {}) };
      if (!reservation) return { requests: counted };
      const tight = reservation.scopes[at(1) - 1];
      return {
        requests: counted,
        reservation: tight
          ? {
              granted: true,
              tokensPerMinute: { scope: tight.id, limit: at(2), remaining: at(3), resetMs: times.retryMs },
            }
          : { granted: true },
      };
    }
    const rank = at(2);
    if (rank === 0) {
      // The refused window is the one the answer ends with: at 2 is the rank, not the kind.
      const refused = windowAt(7) as RequestRateWindow;
      return { requests: { allowed: false, refused: { ...refused, remaining: 0 } } };
    }
    const tightest = windowAt(7);
    const scope = reservation?.scopes[at(1) - 1] as QuotaScope;
    const budget = at(6) > 0 ? scope.budgets?.[at(6) - 1] : undefined;
    return {
      requests: { allowed: true, ...(tightest ? { tightest } : {}) },
      reservation: {
        granted: false,
        scope: scope.id,
        limit: REFUSAL_RANKS[rank - 1] as QuotaLimitKind,
        limitValue: at(3),
        remaining: at(4),
        ...(at(5) >= 0 ? { retryAfterMs: at(5) } : {}),
        ...(budget ? { period: budget.period, periodKey: budget.periodKey } : {}),
      },
    };
  }

  /**
   * Admits go out in batches with the team's settles and releases: what one team asked for in
   * one turn of the event loop is one script call, run in the order it was asked for, exactly as
   * that many calls in a row (quota-turn.lua). At saturation and in bursts one turn holds several
   * requests of a busy team (~12 on average at saturation in the benchmark), and often the settle
   * of one request and the admit of the next: each script call costs Redis more than the
   * requests' own work in it. The wait is the rest of the turn: the calls went out at its end
   * before too, pipelined (redis-client.ts).
   */
  private queueAdmit(teamId: string, args: AdmitItem['args'], ttlMs: number): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      if (this.held.size > 0) this.releaseHeld(teamId);
      this.turn.add(teamId, { kind: 'admit', args, ttlMs, resolve, reject });
    });
  }

  private async runTurn(teamId: string, items: TurnItem[]): Promise<void> {
    // Each item runs at its own caller's now (quota-turn.lua): the script's own now is unused.
    const args: Array<string | number> = [0, EXPIRED_RESERVATION_GRACE_MS, items.length];
    for (const item of items) {
      if (item.kind === 'admit') {
        args.push('a', ...item.args);
      } else {
        const { reservationId, actual } = item;
        args.push(
          'f',
          reservationId,
          actual?.tokens ?? 0,
          actual?.usdMicros ?? 0,
          actual ? '1' : '0',
          item.nowMs,
        );
      }
    }
    let answers: unknown;
    try {
      answers = await this.connection.run(TURN, [hashOf(teamId)], args);
    } catch (error) {
      this.failTurn(teamId, items, error);
      return;
    }
    // One answer per item, ';' between them; an admit's numbers joined by ',' (quota-turn.lua).
    const parts = typeof answers === 'string' ? answers.split(';') : [];
    items.forEach((item, i) => {
      const answer = parts[i];
      if (item.kind === 'finish') {
        if (answer === '1') item.resolve(item.actual ? 'settled' : 'released');
        else item.resolve(answer === '2' ? 'expired' : 'unknown');
      } else if (answer) item.resolve(answer.split(',').map(Number));
      else item.reject(new Error(`The quota script gave no answer for request ${i + 1} of ${items.length}.`));
    });
  }

  /**
   * A script call failed. For an outage, settles and releases are kept for a retry (their
   * callers learn it by KeptForRetryError), and so is a release of every reservation an admit
   * may have made unseen: the call was written and its answer never came (a deadline passed, the
   * connection dropped), so Redis may have run it, or may run it when it resumes; the client
   * was told 503 and will never end it. Releasing a reservation that was never made is a no-op.
   */
  private failTurn(teamId: string, items: TurnItem[], error: unknown): void {
    const outage = isStoreOutage(error, this.connection.client);
    const ran = outage && mayHaveRun(error);
    for (const item of items) {
      if (!outage) item.reject(error);
      else if (item.kind === 'finish') this.keepEnd(teamId, item, error);
      else if (ran && item.args[1] !== '') {
        const [nowMs, reservationId] = item.args;
        const release = { teamId, reservationId, actual: undefined, nowMs };
        item.reject(this.keep(release, item.ttlMs, error));
      } else item.reject(error);
    }
  }

  /** A settle or release failed for an outage: kept (again) for a retry. */
  private keepEnd(teamId: string, item: FinishItem, error: unknown): void {
    if (item.kept) {
      this.kept.keep(item.kept);
      return;
    }
    const { reservationId, actual, nowMs } = item;
    // A settle still counts its spend while the expired record is remembered (the grace).
    const lifetimeMs = this.longestTtlMs + (actual ? EXPIRED_RESERVATION_GRACE_MS : 0);
    item.reject(this.keep({ teamId, reservationId, actual, nowMs }, lifetimeMs, error));
  }

  /**
   * Keeps a settle or release for `lifetimeMs` at most, and says so to its caller with the error
   * it gets (which is not a promise: every method returning one is wrapped by failClosedOnOutage).
   */
  private keep(
    end: Pick<KeptEnd, 'teamId' | 'reservationId' | 'actual' | 'nowMs'>,
    lifetimeMs: number,
    cause: unknown,
  ): KeptForRetryError<QuotaSettleOutcome> {
    const outcome = pendingOutcome<QuotaSettleOutcome>();
    const kept: KeptEnd = {
      ...end,
      until: performance.now() + lifetimeMs,
      settled: outcome.resolve,
      lost: outcome.reject,
    };
    if (this.connection.shuttingDown) kept.lost(new Error('the gateway was stopping'));
    else this.kept.keep(kept);
    return new KeptForRetryError(cause, outcome.promise);
  }

  /** A kept settle or release, sent again with its team's batch. */
  private resendEnd(end: KeptEnd): void {
    const { teamId, reservationId, actual, nowMs, settled } = end;
    this.turn.add(teamId, {
      kind: 'finish',
      reservationId,
      actual,
      nowMs,
      kept: end,
      resolve: settled,
      reject: (error: unknown) => end.lost(error instanceof Error ? error : new Error(String(error))),
    });
  }

  /** Closing: one last try at what is kept, then what still is is lost. */
  private async lastAttempt(): Promise<void> {
    this.kept.retry();
    await this.flush();
    this.kept.giveUp();
  }

  async reserve(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    const { teamId, nowMs, ...reservation } = request;
    const result = await this.admit({ teamId, nowMs, requests: [], reservation });
    return result.reservation as QuotaReservationResult;
  }

  /**
   * Settles and releases go out with the team's admits of the same turn (see runTurn), which
   * saves Redis the per-call work (the shared functions, the reads and writes of the same budget
   * fields) and the gateway a command each. A settle already happens after the client has its
   * answer, so the wait of a turn is nobody's. With settleHoldMs, one waits up to that long for
   * the team's next admit: at moderate rates admits and settles rarely share a turn, and each
   * that travels alone costs a script call, a round trip and an event-loop turn.
   */
  private finish(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage | undefined,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return new Promise<QuotaSettleOutcome>((resolve, reject) => {
      // Thrown here, a bad argument rejects this call alone (as it did when each call ran alone).
      validateTeamId(teamId);
      if (actual) validateUsage(actual);
      const item: FinishItem = { kind: 'finish', reservationId, actual, nowMs, resolve, reject };
      if (this.settleHoldMs <= 0) {
        this.turn.add(teamId, item);
        return;
      }
      const held = this.held.get(teamId);
      if (held) held.push(item);
      else this.held.set(teamId, [item]);
      if (!this.holdTimer) {
        this.holdTimer = setTimeout(() => {
          this.holdTimer = undefined;
          this.releaseHeld();
        }, this.settleHoldMs);
        // Closing the store sends what is held; the timer alone must not keep a process alive.
        this.holdTimer.unref();
      }
    });
  }

  settle(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, actual, nowMs);
  }

  release(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, undefined, nowMs);
  }

  async status(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]> {
    validateTeamId(teamId);
    validateScopes(scopes);
    // Settles and releases asked for before this read count in it, as they would one by one.
    await this.flush(teamId);
    const plan = {
      w: tpmWindow(nowMs),
      s: scopes.map((scope) => ({
        id: scope.id,
        b: (scope.budgets ?? []).map((b) => ({ p: b.period, k: b.periodKey })),
      })),
    };
    const values = (await this.connection.run(
      STATUS,
      [hashOf(teamId)],
      [nowMs, EXPIRED_RESERVATION_GRACE_MS, JSON.stringify(plan)],
    )) as number[];
    let at = 0;
    const next = () => values[at++] ?? 0;
    return scopes.map((scope) => {
      const window = next();
      const slots = next();
      const budgets = (scope.budgets ?? []).map(
        () => [next(), next(), next(), next()] as [number, number, number, number],
      );
      return scopeStatus(scope, nowMs, { window, slots, budgets });
    });
  }
}
