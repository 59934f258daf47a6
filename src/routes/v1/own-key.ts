import type { FastifyInstance } from 'fastify';
import { InvalidRequestError } from '../../errors.js';
import type { QuotaStage } from '../../pipeline/quota.js';

/**
 * `GET /v1/tollgate/key`: a key reads its own limits and what is left of its and its team's
 * budgets, without admin rights. Nothing about other keys or teams.
 */
export async function ownKeyRoutes(app: FastifyInstance, options: { quota: QuotaStage }): Promise<void> {
  app.get('/tollgate/key', async (request) => {
    const principal = request.gateway.principal;
    if (principal?.kind !== 'key') {
      throw new InvalidRequestError(
        'This gateway runs without keys (auth: none): there is no key to describe.',
      );
    }
    const [own, team] = await Promise.all([
      options.quota.standing(
        principal.teamId,
        `key:${principal.keyId}`,
        principal.keyLimits,
        principal.keyBudgets,
      ),
      options.quota.standing(
        principal.teamId,
        `team:${principal.teamId}`,
        principal.teamLimits,
        principal.teamBudgets,
      ),
    ]);
    return {
      object: 'tollgate.key',
      id: principal.keyId,
      team_id: principal.teamId,
      models: principal.keyModels ?? principal.teamModels,
      limits: principal.keyLimits,
      budgets: principal.keyBudgets,
      standing: own,
      team: { limits: principal.teamLimits, budgets: principal.teamBudgets, standing: team },
    };
  });
}
