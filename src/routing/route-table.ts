import {
  type Config,
  DEFAULT_CIRCUIT,
  DEFAULT_RETRY,
  type DeploymentConfig,
  type ModelConfig,
  type RetryConfig,
  type RoutingStrategy,
} from '../config/schema.js';
import type { CircuitPolicy, DeploymentLimits } from '../store/health-store.js';
import type { TargetedFallbackKind } from './targeted-fallback.js';

const ONE_LINE_RETRY: RetryConfig = { ...DEFAULT_RETRY, attempts: 1 };
const ONE_LINE_CIRCUIT = { ...DEFAULT_CIRCUIT, enabled: false };

/** One deployment of a model, normalised from either config form. */
export interface RoutedDeployment {
  /**
   * `<route>/<name>`: unique across the gateway, it names the deployment's circuit and limit
   * counters in the store (so two models on one backend keep separate circuits).
   */
  id: string;
  /** Shown to clients in `x-tollgate-backend`: a config name, never a URL. */
  name: string;
  /** The backend's name in config. */
  backend: string;
  /** What the upstream calls the model; undefined on a wildcard route (the asked name goes through). */
  model: string | undefined;
  weight: number;
  priority: number;
  limits: DeploymentLimits;
}

/** A `models` entry: its deployments in config order and how to route over them. */
export interface ModelRoute {
  /** The `models` key: a public name, `*` or `prefix/*`. */
  route: string;
  deployments: RoutedDeployment[];
  strategy: RoutingStrategy;
  /** Public model names tried in order once every deployment of this one is out. */
  fallbacks: string[];
  /** Tried instead when an attempt is refused for its length or by a content policy. */
  targeted: Record<TargetedFallbackKind, string[]>;
  retry: RetryConfig;
  /**
   * A one-line model without `retry` of its own: every candidate (its deployment, then its
   * fallbacks') is tried once and none twice, instead of `retry.attempts` tries.
   */
  oncePerCandidate: boolean;
  /** Undefined when the model's circuit breaker is turned off. */
  circuit: CircuitPolicy | undefined;
  ownedBy: string | undefined;
}

/** A public name matched to its route. */
export interface RouteMatch {
  publicName: string;
  route: ModelRoute;
}

/**
 * ④ the normalised routing table: each public model -> its ordered deployments. The one-line
 * form (`backend`, `model`) becomes one deployment named after its backend; wildcard routes
 * (`*`, `prefix/*`) are matched after exact names, the longest prefix first.
 */
export class RouteTable {
  private readonly exact = new Map<string, ModelRoute>();
  /** [prefix, route], longest prefix first; '' for `*`. */
  private readonly wildcards: Array<[string, ModelRoute]> = [];

  constructor(models: Config['models']) {
    for (const [name, model] of Object.entries(models)) {
      const route = modelRoute(name, model);
      if (name === '*' || name.endsWith('/*')) this.wildcards.push([name.slice(0, -1), route]);
      else this.exact.set(name, route);
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  /** The route serving `publicName`, or undefined when none does. */
  match(publicName: string): RouteMatch | undefined {
    const exact = this.exact.get(publicName);
    if (exact) return { publicName, route: exact };
    for (const [prefix, route] of this.wildcards) {
      if (publicName.startsWith(prefix) && publicName.length > prefix.length) return { publicName, route };
    }
    return undefined;
  }

  /** Every route: exact names first (config order), then wildcards. */
  routes(): ModelRoute[] {
    return [...this.exact.values(), ...this.wildcards.map(([, route]) => route)];
  }
}

/** What `deployment` of a matched route asks its upstream for. */
export function upstreamModel(match: RouteMatch, deployment: RoutedDeployment): string {
  if (deployment.model !== undefined) return deployment.model;
  // Only wildcard routes leave the model unset: `prefix/<name>` goes through as `<name>`.
  return match.publicName.slice(match.route.route.length - 1);
}

function modelRoute(name: string, model: ModelConfig): ModelRoute {
  const wildcard = name.includes('*');
  const entries: readonly DeploymentConfig[] = model.deployments ?? [
    // The config check guarantees a backend where there are no deployments.
    { backend: model.backend as string, model: model.model, weight: 1, priority: 0, limits: {} },
  ];
  const deployments = entries.map((entry): RoutedDeployment => {
    const deploymentName = entry.name ?? entry.backend;
    return {
      id: `${name}/${deploymentName}`,
      name: deploymentName,
      backend: entry.backend,
      model: wildcard ? undefined : (entry.model ?? name),
      weight: entry.weight,
      priority: entry.priority,
      limits: entry.limits,
    };
  });
  // The one-line form behaves as it always did unless it asks for more: one attempt, no circuit
  // (a single upstream's failure is the client's answer, and nothing stands between them).
  // Its fallbacks (and targeted ones) are tried too, each deployment once (oncePerCandidate).
  const oneLine = model.deployments === undefined;
  const fallbacks = model.fallbacks ?? [];
  const { enabled, ...circuit } = model.circuit ?? (oneLine ? ONE_LINE_CIRCUIT : DEFAULT_CIRCUIT);
  return {
    route: name,
    deployments,
    strategy: model.strategy ?? 'weighted',
    fallbacks: [...fallbacks],
    targeted: {
      context: [...(model.contextFallbacks ?? [])],
      contentPolicy: [...(model.contentPolicyFallbacks ?? [])],
    },
    retry: model.retry ?? (oneLine ? ONE_LINE_RETRY : DEFAULT_RETRY),
    oncePerCandidate: oneLine && model.retry === undefined,
    circuit: enabled ? circuit : undefined,
    ownedBy: model.ownedBy,
  };
}
