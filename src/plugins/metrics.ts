import type { FastifyReply, FastifyRequest } from 'fastify';
import { queueWaitMetricsText } from '../backends/llama-cpp/queue-wait-histogram.js';
import type { DeploymentView } from '../routing/deployment-report.js';
import type { CacheScopeStats } from '../store/cache-store.js';

/**
 * Prometheus counters of this instance (each instance is scraped on its own; the store's
 * shared figures, such as cache entries and bytes, are read at scrape time). Served at
 * `GET /admin/metrics` behind the admin key.
 */
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([name, value]) =>
      `${name}="${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

/**
 * A counter with two fixed label names; label text is built only when scraped. Counted in nested
 * maps, so counting builds no key (it runs for every request).
 */
class Counter {
  private readonly values = new Map<string | number, Map<string | number, number>>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly [string, string],
  ) {}

  inc(first: string | number, second: string | number): void {
    let counts = this.values.get(first);
    if (!counts) {
      counts = new Map();
      this.values.set(first, counts);
    }
    counts.set(second, (counts.get(second) ?? 0) + 1);
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    const [firstName, secondName] = this.labelNames;
    for (const [first, counts] of this.values) {
      for (const [second, value] of counts) {
        const labels = labelText({ [firstName]: String(first), [secondName]: String(second) });
        lines.push(`${this.name}${labels} ${value}`);
      }
    }
    return lines.join('\n');
  }
}

const CIRCUIT_GAUGE = { closed: 0, 'half-open': 1, open: 2 } as const;

export class Metrics {
  private readonly requests = new Counter(
    'tollgate_requests_total',
    'Requests answered by this instance, by route and status.',
    ['route', 'status'],
  );
  private readonly cache = new Counter(
    'tollgate_cache_requests_total',
    'Cacheable requests by team and cache result (HIT, MISS, BYPASS, REFRESH).',
    ['team_id', 'result'],
  );

  private readonly attempts = new Counter(
    'tollgate_deployment_attempts_total',
    'Attempts by deployment name and outcome (success, failure, circuit-open, at-limit, aborted, unavailable).',
    ['deployment', 'outcome'],
  );

  /** Called once per finished request. */
  observe(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url ?? 'unmatched';
    this.requests.inc(route, reply.raw.statusCode);
    const g = request.gateway;
    if (g.cache) {
      const principal = g.principal;
      const team = principal?.kind === 'key' ? principal.teamId : 'none';
      this.cache.inc(team, g.cache);
    }
    for (const attempt of g.attempts ?? []) {
      const { status } = attempt;
      const outcome = typeof status === 'string' ? status : status < 400 ? 'success' : 'failure';
      this.attempts.inc(attempt.deployment, outcome);
    }
  }

  render(cacheStats: CacheScopeStats[], deployments: DeploymentView[] = []): string {
    const entries = ['# HELP tollgate_cache_entries Live response cache entries per scope (shared store).'];
    entries.push('# TYPE tollgate_cache_entries gauge');
    const bytes = [
      '# HELP tollgate_cache_bytes Bytes of live response cache entries per scope (shared store).',
    ];
    bytes.push('# TYPE tollgate_cache_bytes gauge');
    for (const stats of cacheStats) {
      entries.push(`tollgate_cache_entries${labelText({ scope: stats.scope })} ${stats.entries}`);
      bytes.push(`tollgate_cache_bytes${labelText({ scope: stats.scope })} ${stats.bytes}`);
    }
    const circuits = [
      '# HELP tollgate_deployment_circuit_state Circuit of each deployment (shared store): 0 closed, 1 half-open, 2 open.',
      '# TYPE tollgate_deployment_circuit_state gauge',
    ];
    for (const deployment of deployments) {
      const labels = labelText({ model: deployment.model, deployment: deployment.name });
      circuits.push(`tollgate_deployment_circuit_state${labels} ${CIRCUIT_GAUGE[deployment.circuit.state]}`);
    }
    const sections = [
      this.requests.render(),
      this.cache.render(),
      this.attempts.render(),
      entries.join('\n'),
      bytes.join('\n'),
      circuits.join('\n'),
      queueWaitMetricsText(),
    ].filter((section) => section !== '');
    return `${sections.join('\n\n')}\n`;
  }
}
