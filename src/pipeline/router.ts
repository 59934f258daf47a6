import type { Backend } from '../backends/backend.js';
import { discoveringBackendOf } from '../backends/local-servers/backend-availability.js';
import type { BackendRegistry } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { ModelNotFoundError } from '../errors.js';
import { InFlightCounter } from '../routing/in-flight-counter.js';
import { LatencyTracker } from '../routing/latency-tracker.js';
import {
  type ModelRoute,
  type RoutedDeployment,
  type RouteMatch,
  RouteTable,
  upstreamModel,
} from '../routing/route-table.js';
import { orderCandidates } from '../routing/strategies.js';
import type { TargetedFallbackKind } from '../routing/targeted-fallback.js';
import type { DeploymentLimits } from '../store/health-store.js';

/** ④ router: public model name -> the deployment that serves it. */
export interface Deployment {
  /** The name the client used. */
  publicName: string;
  backend: Backend;
  /** What the upstream calls the model (for azure, the deployment). */
  upstreamModel: string;
  /** Shown to clients in `x-tollgate-backend`: a config name, never a URL. */
  name: string;
  /** The `models` entry that matched: the name itself, `*` or `prefix/*`. */
  route: string;
  /** Unique across the gateway: names its circuit and limit counters in the store. */
  id: string;
  limits: DeploymentLimits;
}

/**
 * ④ where one request may go: its model's deployments in the order its strategy gives (the
 * first is where it goes, the rest are where retries go), then each fallback model's in turn.
 */
export interface RoutePlan {
  /** The model's own route: its retry and circuit settings apply to every attempt. */
  route: ModelRoute;
  /**
   * The model's first deployment in config order, whatever the strategy picks: what the cache
   * key and the price estimate are made from, so neither depends on which deployment answers.
   */
  primary: Deployment;
  /** Candidates in the order to try them; each group is one model (the asked one first). */
  groups: Array<{ model: string; route: ModelRoute; deployments: Deployment[] }>;
  /** Where the request goes instead when refused for its length or by a content policy. */
  targeted: Record<TargetedFallbackKind, RoutePlan['groups']>;
}

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

interface WildcardRoute {
  /** '' for `*`, 'prefix/' for `prefix/*`. */
  prefix: string;
  backend: Backend;
}

const UPSTREAM_LIST_TTL_MS = 60_000;
const UPSTREAM_LIST_TIMEOUT_MS = 10_000;
/** After a list fails or times out, how long the backend is skipped without being asked again. */
const FAILED_LIST_RETRY_MS = 30_000;

export interface ModelRouterOptions {
  now?: () => number;
  /** How long `GET /v1/models` waits for one backend's list (UPSTREAM_LIST_TIMEOUT_MS). */
  listTimeoutMs?: number;
}

/**
 * What the router knows of one backend's model list: being asked (callers share the answer),
 * listed (kept UPSTREAM_LIST_TTL_MS), or failed (skipped at once; asked again in the background
 * once FAILED_LIST_RETRY_MS has passed, so no caller waits on a backend known not to answer).
 */
type UpstreamList =
  | { kind: 'asking'; ids: Promise<string[] | undefined> }
  | { kind: 'listed'; at: number; ids: string[] }
  | { kind: 'failed'; at: number; retrying: boolean };

export class ModelRouter {
  private readonly table: RouteTable;
  /** Public name -> owned_by, for the configured (non-wildcard) models. */
  private readonly exact = new Map<string, string>();
  private readonly wildcards: WildcardRoute[] = [];
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly upstreamLists = new Map<string, UpstreamList>();
  /** Local servers whose first probe a listing waited for in vain. */
  private readonly gaveUpOnFirstProbe = new Set<string>();
  private readonly now: () => number;
  private readonly listTimeoutMs: number;
  /** Fed by the attempts (src/pipeline/attempts.ts), read by the strategies. Per instance. */
  readonly inFlight = new InFlightCounter();
  readonly latency = new LatencyTracker();

  constructor(
    config: Config,
    private readonly registry: BackendRegistry,
    options: ModelRouterOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.listTimeoutMs = options.listTimeoutMs ?? UPSTREAM_LIST_TIMEOUT_MS;
    this.table = new RouteTable(config.models);
    for (const route of this.table.routes()) {
      const first = registry.get(route.deployments[0]?.backend ?? '');
      if (route.route === '*' || route.route.endsWith('/*')) {
        this.wildcards.push({ prefix: route.route.slice(0, -1), backend: first });
      } else {
        this.exact.set(route.route, route.ownedBy ?? (first.type === 'mock' ? 'tollgate' : first.type));
      }
    }
  }

  /**
   * Throws ModelNotFoundError (404) for a name no route serves. The deployment the strategy
   * puts first (uploads go there; JSON requests go through `plan` and may fail over).
   */
  resolve(publicName: string): Deployment {
    const match = this.table.match(publicName);
    if (!match) throw new ModelNotFoundError(publicName);
    const [chosen] = this.ordered(match);
    if (!chosen) throw new ModelNotFoundError(publicName);
    return chosen;
  }

  /**
   * Every place a request for `publicName` may go, in order. `mayUse` filters fallback models
   * (a key or team may not be allowed one); `fallbacks: false` leaves them out.
   */
  plan(publicName: string, options: { fallbacks: boolean; mayUse: (model: string) => boolean }): RoutePlan {
    const match = this.table.match(publicName);
    if (!match) throw new ModelNotFoundError(publicName);
    const first = match.route.deployments[0];
    if (!first) throw new ModelNotFoundError(publicName);
    const groups = (models: string[]): RoutePlan['groups'] => {
      if (!options.fallbacks) return [];
      return models.flatMap((fallback) => {
        const fallbackMatch = this.table.match(fallback);
        if (!fallbackMatch || !options.mayUse(fallback)) return [];
        return [{ model: fallback, route: fallbackMatch.route, deployments: this.ordered(fallbackMatch) }];
      });
    };
    return {
      route: match.route,
      primary: this.deployment(match, first),
      groups: [
        { model: publicName, route: match.route, deployments: this.ordered(match) },
        ...groups(match.route.fallbacks),
      ],
      targeted: {
        context: groups(match.route.targeted.context),
        contentPolicy: groups(match.route.targeted.contentPolicy),
      },
    };
  }

  private ordered(match: RouteMatch): Deployment[] {
    return orderCandidates(match.route.strategy, match.route.deployments, {
      inFlight: this.inFlight,
      latency: this.latency,
      upstreamModel: (deployment) => upstreamModel(match, deployment),
    }).map((deployment) => this.deployment(match, deployment));
  }

  private deployment(match: RouteMatch, chosen: RoutedDeployment): Deployment {
    return {
      publicName: match.publicName,
      backend: this.registry.get(chosen.backend),
      upstreamModel: upstreamModel(match, chosen),
      name: chosen.name,
      route: match.route.route,
      id: chosen.id,
      limits: chosen.limits,
    };
  }

  /** Configured models, then what each wildcard's upstream offers (skipped while it cannot answer). */
  async list(): Promise<ModelCard[]> {
    const cards = new Map<string, ModelCard>();
    for (const [id, ownedBy] of this.exact) cards.set(id, this.card(id, ownedBy));
    const lists = await Promise.all(
      this.wildcards.map(async (route) => ({ route, ids: await this.upstreamIds(route.backend) })),
    );
    for (const { route, ids } of lists) {
      for (const id of ids ?? []) {
        const publicId = `${route.prefix}${id}`;
        if (!cards.has(publicId)) cards.set(publicId, this.card(publicId, route.backend.type));
      }
    }
    return [...cards.values()];
  }

  async retrieve(id: string): Promise<ModelCard> {
    const ownedBy = this.exact.get(id);
    if (ownedBy !== undefined) return this.card(id, ownedBy);
    const deployment = this.resolve(id);
    const ids = await this.upstreamIds(deployment.backend);
    // An upstream that listed its models and lacks this one does not have it.
    if (ids !== undefined && !ids.includes(deployment.upstreamModel)) throw new ModelNotFoundError(id);
    return this.card(id, deployment.backend.type);
  }

  private card(id: string, ownedBy: string): ModelCard {
    return { id, object: 'model', created: this.created, owned_by: ownedBy };
  }

  /** The upstream's model ids, cached briefly; undefined while the upstream cannot say. */
  private async upstreamIds(backend: Backend): Promise<string[] | undefined> {
    // A local server's list is its own discovery's, in memory and refreshed on demand: caching it
    // here would hide a model pulled a moment ago for up to a minute. Its discovery remembers a
    // server found down (until a probe finds it up), so only its first probe is ever waited on,
    // and only until one listing has given up on it (a server that takes its whole
    // discovery.timeoutMs to not answer would otherwise hold up every listing until then).
    const discovering = discoveringBackendOf(backend);
    if (discovering) {
      const gaveUp = this.gaveUpOnFirstProbe.has(backend.name);
      if (gaveUp && discovering.discoveryState().state === 'unknown') return undefined;
      const ids = await this.ask(backend);
      if (ids === undefined) this.gaveUpOnFirstProbe.add(backend.name);
      return ids;
    }
    const known = this.upstreamLists.get(backend.name);
    const now = this.now();
    if (known?.kind === 'asking') return known.ids;
    if (known?.kind === 'listed' && now - known.at < UPSTREAM_LIST_TTL_MS) return known.ids;
    if (known?.kind === 'failed') {
      if (!known.retrying && now - known.at >= FAILED_LIST_RETRY_MS) {
        known.retrying = true;
        void this.remember(backend, this.ask(backend));
      }
      return undefined;
    }
    const ids = this.remember(backend, this.ask(backend));
    this.upstreamLists.set(backend.name, { kind: 'asking', ids });
    return ids;
  }

  private async remember(
    backend: Backend,
    asked: Promise<string[] | undefined>,
  ): Promise<string[] | undefined> {
    const ids = await asked;
    this.upstreamLists.set(
      backend.name,
      ids === undefined
        ? { kind: 'failed', at: this.now(), retrying: false }
        : { kind: 'listed', at: this.now(), ids },
    );
    return ids;
  }

  /**
   * The backend's list, or undefined when it fails or takes longer than listTimeoutMs. Shared by
   * concurrent callers, so it must not hang on any one client's signal; nor on a backend that
   * does not honour its own.
   */
  private async ask(backend: Backend): Promise<string[] | undefined> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        controller.abort(new Error('model list timed out'));
        resolve(undefined);
      }, this.listTimeoutMs);
      // A list still being asked for does not keep a process that is shutting down alive.
      timer.unref();
    });
    try {
      // A promise also when listModels throws instead of rejecting.
      const listed = new Promise<string[]>((resolve) => resolve(backend.listModels(controller.signal)));
      return await Promise.race([listed.catch(() => undefined), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
