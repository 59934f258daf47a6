import type { FastifyInstance } from 'fastify';
import type { ReadinessProbe } from '../http/readiness-probe.js';

export async function healthRoutes(
  app: FastifyInstance,
  options: { readiness: ReadinessProbe },
): Promise<void> {
  /** Liveness: the process is up and serving. */
  app.get('/healthz', async () => ({ status: 'ok' }));
  /** Readiness: the store answers and enough backends are reachable to serve traffic. */
  app.get('/readyz', async (_request, reply) => {
    const report = await options.readiness.check();
    return reply.code(report.ready ? 200 : 503).send(report);
  });
}
