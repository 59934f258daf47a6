import type { FastifyInstance } from 'fastify';
import { assertModelAllowed, principalAllows } from '../../pipeline/auth.js';
import type { ModelRouter } from '../../pipeline/router.js';
import { anthropicModel, anthropicModelPage } from './anthropic-model-list.js';

/**
 * The model list, as the caller's key sees it: models outside its allowlist do not exist for it.
 * In Anthropic's shape when the request carries `anthropic-version` (the Anthropic SDK, Claude Code).
 */
export async function modelRoutes(app: FastifyInstance, options: { router: ModelRouter }): Promise<void> {
  const { router } = options;
  app.get('/models', async (request) => {
    const data = (await router.list()).filter((card) => principalAllows(request.gateway.principal, card.id));
    if (request.headers['anthropic-version'] !== undefined)
      return anthropicModelPage(data, request.query as Record<string, unknown>);
    return { object: 'list', data };
  });
  // Ids may contain '/', sent raw or as %2F; the wildcard takes both.
  app.get('/models/*', async (request) => {
    // The router has decoded the path already (%2F included); decoding again would break ids with '%'.
    const id = (request.params as { '*': string })['*'];
    assertModelAllowed(request.gateway.principal, id);
    const card = await router.retrieve(id);
    return request.headers['anthropic-version'] !== undefined ? anthropicModel(card) : card;
  });
}
