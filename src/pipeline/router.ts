import type { Backend } from '../backends/backend.js';
import type { BackendRegistry } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { ModelNotFoundError } from '../errors.js';

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
}

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

interface ExactRoute {
  backend: Backend;
  upstreamModel: string;
  ownedBy: string;
}

interface WildcardRoute {
  /** '' for `*`, 'prefix/' for `prefix/*`. */
  prefix: string;
  backend: Backend;
}

const UPSTREAM_LIST_TTL_MS = 60_000;
const UPSTREAM_LIST_TIMEOUT_MS = 10_000;

export class ModelRouter {
  private readonly exact = new Map<string, ExactRoute>();
  private readonly wildcards: WildcardRoute[] = [];
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly upstreamLists = new Map<string, { at: number; ids: Promise<string[]> }>();

  constructor(config: Config, registry: BackendRegistry) {
    for (const [name, model] of Object.entries(config.models)) {
      const backend = registry.get(model.backend);
      if (name === '*' || name.endsWith('/*')) {
        this.wildcards.push({ prefix: name.slice(0, -1), backend });
      } else {
        this.exact.set(name, {
          backend,
          upstreamModel: model.model ?? name,
          ownedBy: model.ownedBy ?? (backend.type === 'mock' ? 'tollgate' : backend.type),
        });
      }
    }
    // Longest prefix first, so `openai/*` wins over `*`.
    this.wildcards.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Throws ModelNotFoundError (404) for a name no route serves. */
  resolve(publicName: string): Deployment {
    const exact = this.exact.get(publicName);
    if (exact) {
      return {
        publicName,
        backend: exact.backend,
        upstreamModel: exact.upstreamModel,
        name: exact.backend.name,
        route: publicName,
      };
    }
    for (const route of this.wildcards) {
      if (publicName.startsWith(route.prefix) && publicName.length > route.prefix.length) {
        return {
          publicName,
          backend: route.backend,
          upstreamModel: publicName.slice(route.prefix.length),
          name: route.backend.name,
          route: `${route.prefix}*`,
        };
      }
    }
    throw new ModelNotFoundError(publicName);
  }

  /** Configured models, then what each wildcard's upstream offers (skipped while it cannot answer). */
  async list(): Promise<ModelCard[]> {
    const cards = new Map<string, ModelCard>();
    for (const [id, route] of this.exact) cards.set(id, this.card(id, route.ownedBy));
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
    const exact = this.exact.get(id);
    if (exact) return this.card(id, exact.ownedBy);
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
    const cached = this.upstreamLists.get(backend.name);
    if (cached && Date.now() - cached.at < UPSTREAM_LIST_TTL_MS) return cached.ids.catch(() => undefined);
    // Shared by concurrent callers, so it must not hang on any one client's signal.
    const ids = backend.listModels(AbortSignal.timeout(UPSTREAM_LIST_TIMEOUT_MS));
    this.upstreamLists.set(backend.name, { at: Date.now(), ids });
    try {
      return await ids;
    } catch {
      // Do not remember a failure: the next call asks again.
      this.upstreamLists.delete(backend.name);
      return undefined;
    }
  }
}
