import type { FastifyInstance } from 'fastify';
import { assertModelAllowed, principalAllows } from '../../pipeline/auth.js';
import type { ModelRouter } from '../../pipeline/router.js';

/** The model list, as the caller's key sees it: models outside its allowlist do not exist for it. */
export async function modelRoutes(app: FastifyInstance, options: { router: ModelRouter }): Promise<void> {
  const { router } = options;
  app.get('/models', async (request) => ({
    object: 'list',
    data: (await router.list()).filter((card) => principalAllows(request.gateway.principal, card.id)),
  }));
  // Ids may contain '/', sent raw or as %2F; the wildcard takes both.
  app.get('/models/*', async (request) => {
    // The router has decoded the path already (%2F included); decoding again would break ids with '%'.
    const id = (request.params as { '*': string })['*'];
    assertModelAllowed(request.gateway.principal, id);
    return router.retrieve(id);
  });
}
