import type { FastifyInstance, HTTPMethods } from 'fastify';

/** One method on one route pattern, exactly as registered (`/admin/keys/:id`, `/v1/models/*`). */
export interface DiscoveredRoute {
  method: string;
  url: string;
}

/**
 * Every route the app has, read from the app itself so that a new endpoint is fuzzed (and its
 * missing body generator noticed) without anyone editing a list.
 *
 * Fastify has no public route enumeration; `printRoutes({ commonPrefix: false })` prints the
 * radix tree, one node a line, children indented under their parent. A node's text is either a
 * continuation of its parent's path (`/:id` under `/admin/teams`) or a segment after a `/` the
 * printer folded away (`*` under `/v1/models`). Each candidate is confirmed with the public
 * `hasRoute`, and a printed node that no reading confirms throws: the list can be incomplete
 * only if Fastify's printer leaves a route out, never because the parsing guessed.
 */
export function discoverRoutes(app: FastifyInstance): DiscoveredRoute[] {
  const printed = app.printRoutes({ commonPrefix: false });
  const stack: Array<{ depth: number; path: string }> = [];
  const routes: DiscoveredRoute[] = [];
  for (const line of printed.split('\n')) {
    const match = /^([│ ]*)(?:[├└]── )(.+?) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) {
      if (line.trim() !== '') throw new Error(`unexpected line in printRoutes output: ${line}`);
      continue;
    }
    const [, indent = '', segment = '', methods = ''] = match;
    const depth = indent.length / 4;
    while (stack.length > 0 && (stack.at(-1)?.depth ?? 0) >= depth) stack.pop();
    const parent = stack.at(-1)?.path ?? '';
    const methodList = methods.split(',').map((method) => method.trim());
    const candidates = [
      `${parent}${segment}`,
      `${parent}/${segment}`,
      // A root-level `*` (the CORS preflight) is registered as `*` or `/*`.
      segment,
    ];
    const path = candidates.find((candidate) =>
      methodList.every((method) => app.hasRoute({ method: method as HTTPMethods, url: candidate })),
    );
    if (path === undefined) {
      throw new Error(`printRoutes shows "${line.trim()}" but hasRoute confirms none of ${candidates}`);
    }
    stack.push({ depth, path });
    for (const method of methodList) routes.push({ method, url: path });
  }
  if (routes.length === 0) throw new Error('no routes discovered: the printRoutes format changed');
  return routes;
}

export const routeKey = (route: DiscoveredRoute): string => `${route.method} ${route.url}`;
