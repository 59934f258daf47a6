import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { BackendResponse } from '../backends/backend.js';
import { cacheKey, keyableBody } from '../cache/cache-key.js';
import {
  type CacheableEndpoint,
  decide,
  isCacheable,
  parseDirectives,
  resolvePolicy,
} from '../cache/cache-policy.js';
import { cacheScope } from '../cache/cache-scope.js';
import { splitsIntoItems } from '../cache/embedding-items.js';
import { Flight, Flights } from '../cache/flight.js';
import { FollowedStreamBrokeError } from '../cache/followed-stream-broke-error.js';
import { FollowerMark } from '../cache/follower-mark.js';
import { replayMessageAsStream } from '../cache/messages-stream-replay.js';
import { replayAsStream } from '../cache/stream-replay.js';
import type { CacheConfig, ModelConfig } from '../config/schema.js';
import { answerKeepingNumbers } from '../json-numbers.js';
import type { CachedAnswer, CacheStore, LiveEntry } from '../store/cache-store.js';
import { assemblerFor, CacheFill, type CacheFillDeps } from './cache-fill.js';
import type { JsonDispatch } from './dispatch.js';
import type { Deployment } from './router.js';

/**
 * ③ cache: exact-match answers kept in the store, per team by default. Decides per request
 * (policy + the request's controls), answers hits as JSON or as a replayed stream, lets
 * identical requests in flight wait for the first one (in this process, and on other instances
 * through the store), and keeps the first one's answer once it is complete.
 */
export interface CachePlan {
  endpoint: CacheableEndpoint;
  scope: string;
  /**
   * An embeddings input list is cached per input (cache-answers.ts keys each one with
   * itemHashes); its plan has no key of its own (hash and id are empty).
   */
  perItem: boolean;
  hash: string;
  /** Scope and hash: identifies the flight. */
  id: string;
  model: string;
  lookup: boolean;
  store: boolean;
  ttlMs: number;
  maxAgeMs?: number | undefined;
}

export interface CacheHit {
  answer: CachedAnswer;
  /** Seconds since it was stored (0 for an answer shared by a request in flight). */
  ageSeconds: number;
}

/** How this request takes part in the fill of its entry. */
export type CacheRole =
  | { kind: 'hit'; hit: CacheHit }
  /**
   * Join the stream of a request in flight (here or on another instance), from its first chunk;
   * `close` (idempotent) must run once the joiner is done, whether it read the blocks or not.
   */
  | { kind: 'tail'; blocks: AsyncIterable<Buffer>; close?: (() => void) | undefined }
  /** Go upstream; `fill` when this request fills the entry (for the others, or for later). */
  | { kind: 'upstream'; fill?: CacheFill | undefined };

/** How often a stream joined on another instance is read for new blocks. */
const LIVE_POLL_MS = 25;
const LIVE_BATCH = 256;

/** True once `change` resolves; false after `ms` or when `signal` aborts, whichever comes first. */
function untilOrGiveUp(change: Promise<void>, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted || ms <= 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    signal.addEventListener('abort', onAbort, { once: true });
    change.then(() => done(true));
  });
}

export class CacheStage {
  private readonly flights = new Flights();
  /** Fills still being stored and released (they outlive their responses). */
  private readonly finishing = new Set<Promise<void>>();
  private readonly fillDeps: CacheFillDeps;

  constructor(
    private readonly store: CacheStore,
    private readonly config: CacheConfig,
    private readonly models: Readonly<Record<string, ModelConfig>>,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {
    this.fillDeps = {
      store,
      config,
      flights: this.flights,
      log,
      now,
      track: (work) => {
        this.finishing.add(work);
        return work.finally(() => this.finishing.delete(work));
      },
    };
  }

  /**
   * The verdict for one request. Sets `x-tollgate-cache: BYPASS` when the cache has no say; a
   * plan's MISS or REFRESH waits for `consulted`, once the request rates let the request in.
   */
  plan(
    request: FastifyRequest,
    reply: FastifyReply,
    dispatch: JsonDispatch,
    deployment: Deployment,
    model: string,
  ): CachePlan | undefined {
    const endpoint = dispatch.endpoint;
    if (!isCacheable(endpoint)) return undefined;
    const principal = request.gateway.principal;
    const key = principal?.kind === 'key' ? principal : undefined;
    const policy = resolvePolicy(
      this.config,
      this.models[deployment.route]?.cache,
      key?.teamCache,
      key?.keyCache,
    );
    const verdict = decide(
      endpoint,
      dispatch.body,
      policy,
      parseDirectives(request.headers),
      this.config.maxTtl,
    );
    // Without a key (auth: none) there is no team to scope by: only a global policy shares.
    const owner =
      policy.scope === 'global'
        ? cacheScope('global')
        : key
          ? cacheScope(policy.scope, policy.scope === 'key' ? key.keyId : key.teamId)
          : undefined;
    if (!verdict.use || owner === undefined || tooLargeToKey(request, this.config.maxRequestBytes)) {
      this.mark(request, reply, 'BYPASS');
      return undefined;
    }
    const perItem = endpoint === 'embeddings' && splitsIntoItems(dispatch.body);
    // Like a body over cache.maxRequestBytes, one whose key would hold the event loop is not
    // cached. Asked last, after the cheap refusals; items are keyed one by one, each small.
    if (!perItem && !keyableBody(dispatch.body)) {
      this.mark(request, reply, 'BYPASS');
      return undefined;
    }
    const hash = perItem
      ? ''
      : cacheKey(endpoint, deployment.route, deployment.publicName, keyedBody(request, dispatch));
    return {
      endpoint,
      scope: owner,
      perItem,
      hash,
      id: perItem ? '' : `${owner}\n${hash}`,
      model,
      lookup: verdict.lookup,
      store: verdict.store,
      ttlMs: verdict.ttlMs,
      maxAgeMs: verdict.maxAgeMs,
    };
  }

  /**
   * The cache is about to be consulted for this request: a MISS (or REFRESH) until a hit or a
   * joined answer says otherwise. Not before: a request refused first was neither.
   */
  consulted(request: FastifyRequest, reply: FastifyReply, plan: CachePlan): void {
    this.mark(request, reply, plan.lookup ? 'MISS' : 'REFRESH');
  }

  private mark(request: FastifyRequest, reply: FastifyReply, status: 'HIT' | 'MISS' | 'BYPASS' | 'REFRESH') {
    request.gateway.cache = status;
    reply.header('x-tollgate-cache', status);
  }

  private async lookup(plan: CachePlan): Promise<CacheHit | undefined> {
    const now = this.now();
    const answer = await this.store.get(plan.scope, plan.hash, now);
    if (!answer) return undefined;
    const ageMs = Math.max(0, now - answer.createdAt);
    if (plan.maxAgeMs !== undefined && ageMs > plan.maxAgeMs) return undefined;
    return { answer, ageSeconds: Math.floor(ageMs / 1000) };
  }

  /**
   * A stored answer, one in flight to join, or the way upstream (leading the fill when
   * coalescing). A store that fails is logged and treated as a miss: the cache must never turn
   * an answerable request into an error.
   */
  async role(plan: CachePlan, wantsStream: boolean, signal: AbortSignal): Promise<CacheRole> {
    let started: Flight | undefined;
    try {
      if (plan.lookup) {
        const hit = await this.lookup(plan);
        if (hit) return { kind: 'hit', hit };
      }
      if (!this.config.coalesce.enabled || !plan.lookup)
        return { kind: 'upstream', fill: this.soloFill(plan) };
      const local = this.flights.get(plan.id);
      if (local) return (await this.joinLocal(local, wantsStream, signal)) ?? { kind: 'upstream' };
      // A request that will not store its answer does not make others wait for it.
      if (!plan.store) return { kind: 'upstream' };
      const flight = this.flights.start(plan.id);
      started = flight;
      if (await this.store.claim(plan.scope, plan.hash, this.config.coalesce.waitMs))
        return { kind: 'upstream', fill: new CacheFill(plan, flight, true, this.fillDeps) };
      // Another instance is answering this very request: follow its stream live, or wait for its
      // answer and read it.
      if (wantsStream && this.store.shared) {
        const joined = await this.joinRemote(plan, flight, signal);
        if (joined) return joined;
        return { kind: 'upstream', fill: new CacheFill(plan, flight, false, this.fillDeps) };
      }
      const outcome = await this.store.waitForFill(plan.scope, plan.hash, this.config.coalesce.waitMs);
      const hit = outcome === 'filled' ? await this.lookup({ ...plan, maxAgeMs: undefined }) : undefined;
      if (hit) {
        this.flights.end(plan.id, flight, hit.answer);
        return { kind: 'hit', hit: { answer: hit.answer, ageSeconds: hit.ageSeconds } };
      }
      return { kind: 'upstream', fill: new CacheFill(plan, flight, false, this.fillDeps) };
    } catch (error) {
      this.log.warn(
        { error: { message: (error as Error).message } },
        'response cache unavailable; going upstream',
      );
      // Whoever joined this request's flight must not wait for a fill that will not come.
      if (started) this.flights.end(plan.id, started, null);
      return { kind: 'upstream' };
    }
  }

  /**
   * Joins a request in flight in this process: its stream from the first chunk, or its answer.
   * Gives up (undefined: go upstream) after `coalesce.waitMs` or when the joiner's client leaves.
   */
  private async joinLocal(
    local: Flight,
    wantsStream: boolean,
    signal: AbortSignal,
  ): Promise<CacheRole | undefined> {
    const deadline = Date.now() + this.config.coalesce.waitMs;
    const within = (change: Promise<void>) => untilOrGiveUp(change, deadline - Date.now(), signal);
    // Counted as a joiner while it waits or follows: the leader's upstream call then outlives its
    // own client, if that one leaves.
    const leave = local.join();
    let following = false;
    try {
      if (!(await within(local.settled()))) return undefined;
      if (local.streaming && wantsStream && local.outcome !== null) {
        following = true;
        return { kind: 'tail', blocks: local.tail(), close: leave };
      }
      while (local.outcome === undefined) if (!(await within(local.changed()))) return undefined;
      return local.outcome ? { kind: 'hit', hit: { answer: local.outcome, ageSeconds: 0 } } : undefined;
    } finally {
      if (!following) leave();
    }
  }

  /**
   * Waits for the other instance's stream to show up in the store (then follows it), or for its
   * answer (a JSON leader: a hit); undefined when it failed or never came (go upstream).
   */
  private async joinRemote(
    plan: CachePlan,
    flight: Flight,
    signal: AbortSignal,
  ): Promise<CacheRole | undefined> {
    const deadline = Date.now() + this.config.coalesce.waitMs;
    while (Date.now() < deadline) {
      const entries = await this.store.readLive(plan.scope, plan.hash, '0', LIVE_BATCH);
      if (entries.length > 0) {
        if (entries[0]?.end === 'broken') return undefined;
        return {
          kind: 'tail',
          blocks: this.remoteTail(plan, flight, entries, signal),
          // The generator ends the flight itself once read; this covers a joiner that never reads.
          close: () => this.flights.end(plan.id, flight, null),
        };
      }
      const outcome = await this.store.waitForFill(plan.scope, plan.hash, LIVE_POLL_MS);
      if (outcome === 'failed') return undefined;
      if (outcome === 'filled') {
        const hit = await this.lookup({ ...plan, maxAgeMs: undefined });
        if (!hit) return undefined;
        this.flights.end(plan.id, flight, hit.answer);
        return { kind: 'hit', hit };
      }
    }
    return undefined;
  }

  /**
   * The blocks of a stream another instance is receiving, from the first, polling for the rest.
   * Joiners in this process follow along through this request's flight. Marked as a follower
   * before the first block goes out, so the leader reads on for it should its own client leave;
   * the mark goes as soon as this request's client (`signal`) does, even while the leader is
   * silent (the relay notices only at the next block).
   */
  private async *remoteTail(
    plan: CachePlan,
    flight: Flight,
    first: LiveEntry[],
    signal: AbortSignal,
  ): AsyncGenerator<Buffer> {
    const assembler = assemblerFor(plan.endpoint);
    let outcome: CachedAnswer | null = null;
    flight.startStream();
    const mark = new FollowerMark(this.store, plan.scope, plan.hash);
    const leave = () => mark.stop();
    signal.addEventListener('abort', leave, { once: true });
    try {
      if (!signal.aborted) await mark.start();
      let entries = first;
      let after = '0';
      let idleSince = Date.now();
      for (;;) {
        for (const entry of entries) {
          after = entry.id;
          if (entry.block) {
            assembler.addBlock(entry.block);
            flight.push(entry.block);
            yield entry.block;
          }
          if (entry.end === 'broken') throw new FollowedStreamBrokeError();
          if (entry.end === 'complete') {
            const answer = assembler.answer();
            if (answer)
              outcome = {
                body: Buffer.from(JSON.stringify(answer)),
                createdAt: this.now(),
                model: plan.model,
              };
            return;
          }
        }
        if (entries.length > 0) idleSince = Date.now();
        else if (Date.now() - idleSince > this.config.coalesce.waitMs) throw new FollowedStreamBrokeError();
        await new Promise((resolve) => setTimeout(resolve, LIVE_POLL_MS));
        entries = await this.store.readLive(plan.scope, plan.hash, after, LIVE_BATCH);
      }
    } finally {
      signal.removeEventListener('abort', leave);
      mark.stop();
      this.flights.end(plan.id, flight, outcome);
    }
  }

  /** Fills the entry for this request alone (no coalescing, or a refresh): nobody waits on it. */
  private soloFill(plan: CachePlan): CacheFill | undefined {
    if (!plan.store) return undefined;
    return new CacheFill(plan, new Flight(false), false, this.fillDeps);
  }

  /** One key per input of an embeddings batch: the key a one-input request for it would have. */
  itemHashes(plan: CachePlan, dispatch: JsonDispatch, deployment: Deployment, inputs: unknown[]): string[] {
    return inputs.map((input) =>
      cacheKey(plan.endpoint, deployment.route, deployment.publicName, { ...dispatch.body, input }),
    );
  }

  /** The stored answer for each hash (undefined where none); a failing store reads as all misses. */
  async lookupItems(plan: CachePlan, hashes: string[]): Promise<Array<CacheHit | undefined>> {
    if (!plan.lookup) return hashes.map(() => undefined);
    try {
      return await Promise.all(hashes.map((hash) => this.lookup({ ...plan, hash })));
    } catch (error) {
      this.log.warn(
        { error: { message: (error as Error).message } },
        'response cache unavailable; going upstream',
      );
      return hashes.map(() => undefined);
    }
  }

  async storeItems(plan: CachePlan, entries: Array<{ hash: string; body: Buffer }>): Promise<void> {
    if (!plan.store) return;
    const now = this.now();
    try {
      await Promise.all(
        entries
          .filter((entry) => entry.body.length <= this.config.maxEntryBytes)
          .map((entry) =>
            this.store.set(
              plan.scope,
              entry.hash,
              { body: entry.body, createdAt: now, model: plan.model },
              plan.ttlMs,
              now,
            ),
          ),
      );
    } catch (error) {
      this.log.warn(
        { error: { message: (error as Error).message } },
        'could not store an answer in the cache',
      );
    }
  }

  /** A stored answer replayed as the stream a streaming request expects (never embeddings). */
  replayStream(hit: CacheHit, plan: CachePlan, includeUsage: boolean): BackendResponse | undefined {
    if (plan.endpoint === 'embeddings') return undefined;
    const text = hit.answer.body.toString('utf8');
    // A Message's tool inputs are written on as they were stored: an id past 2^53 keeps its digits.
    const answer = (plan.endpoint === 'messages' ? answerKeepingNumbers(text) : JSON.parse(text)) as Record<
      string,
      unknown
    >;
    return {
      status: 200,
      contentType: 'text/event-stream',
      headers: {},
      body: [
        plan.endpoint === 'messages'
          ? replayMessageAsStream(answer)
          : replayAsStream(answer, plan.endpoint, { includeUsage }),
      ],
    };
  }

  markHit(request: FastifyRequest, reply: FastifyReply, hit: Pick<CacheHit, 'ageSeconds'>): void {
    this.mark(request, reply, 'HIT');
    reply.header('age', String(hit.ageSeconds));
  }

  /** Waits for fills in progress: on shutdown, before the store closes under them. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.finishing]);
  }
}

/**
 * What the cache key covers: the body, and for Anthropic's Messages the betas and version the
 * client asked for (a beta can change the answer). `metadata` (Claude Code's session id in
 * `user_id`) never changes an answer, so it does not split the cache.
 */
function keyedBody(request: FastifyRequest, dispatch: JsonDispatch): Record<string, unknown> {
  if (dispatch.endpoint !== 'messages') return dispatch.body;
  const { metadata: _metadata, ...body } = dispatch.body;
  return {
    ...body,
    'anthropic-beta': request.headers['anthropic-beta'] ?? null,
    'anthropic-version': request.headers['anthropic-version'] ?? null,
  };
}

/**
 * A body whose key would cost more event-loop time than a request should (canonical form and
 * hash are linear in its size). Known from content-length, which the SDKs always send; a chunked
 * body is keyed whatever its size (the body limit still bounds it).
 */
function tooLargeToKey(request: FastifyRequest, maxBytes: number): boolean {
  const length = Number(request.headers['content-length']);
  return Number.isFinite(length) && length > maxBytes;
}
