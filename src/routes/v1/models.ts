import type { FastifyInstance } from 'fastify';
import type { ModelRouter } from '../../pipeline/router.js';

export async function modelRoutes(app: FastifyInstance, options: { router: ModelRouter }): Promise<void> {
  const { router } = options;
  app.get('/models', async () => ({ object: 'list', data: await router.list() }));
  // Ids may contain '/', sent raw or as %2F; the wildcard takes both.
  app.get('/models/*', async (request) => {
    const id = decodeURIComponent((request.params as { '*': string })['*']);
    return router.retrieve(id);
  });
}
