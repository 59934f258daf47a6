/**
 * Which methods the gateway serves at a path, for the answers to requests no route took: 404
 * when nothing is served there, 405 with `allow` when other methods are. Fastify's router only
 * says "no match"; this table is filled from its onRoute hook, with the same patterns.
 */
export class RouteTable {
  private readonly routes: Array<{ pattern: RegExp; methods: Set<string> }> = [];

  /** A route as Fastify declares it: `/v1/models/*`, `/admin/keys/:id/rotate`. */
  add(methods: string | readonly string[], url: string): void {
    // A catch-all (the CORS hook's `OPTIONS *`) would make every path look known.
    if (url === '*' || url === '/*') return;
    const source = url
      .split('/')
      .map((segment) => {
        if (segment === '*') return '.*';
        if (segment.startsWith(':')) return '[^/]+';
        return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    const pattern = new RegExp(`^${source}/?$`);
    const existing = this.routes.find((route) => route.pattern.source === pattern.source);
    const list = typeof methods === 'string' ? [methods] : methods;
    if (existing) for (const method of list) existing.methods.add(method);
    else this.routes.push({ pattern, methods: new Set(list) });
  }

  /** The methods served at `path` (no query string), OPTIONS included; [] when none are. */
  methodsAt(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.routes) {
      if (route.pattern.test(path)) for (const method of route.methods) methods.add(method);
    }
    if (methods.size === 0) return [];
    methods.add('OPTIONS');
    return [...methods];
  }
}
