import { GatewayError } from '../errors.js';
import { type Budget, LIMIT_NAMES, type Limits } from './records.js';

/** Limits as PATCH sends them: a number sets one, null removes it, absent leaves it. */
export type LimitsPatch = { [K in keyof Limits]?: number | null };

export class LimitAboveTeamError extends GatewayError {
  constructor(param: string, value: number, teamValue: number) {
    super(
      400,
      'invalid_request_error',
      'limit_exceeds_team',
      `A key's limits can only be tighter than its team's: ${param} is ${value}, the team's is ${teamValue}.`,
      { param },
    );
  }
}

export function applyLimitsPatch(current: Limits | undefined, patch: LimitsPatch | null | undefined): Limits {
  if (patch === null) return {};
  const next: Limits = { ...(current ?? {}) };
  for (const name of LIMIT_NAMES) {
    const value = patch?.[name];
    if (value === null) delete next[name];
    else if (value !== undefined) next[name] = value;
  }
  return next;
}

/** Throws unless every limit and budget the key sets is at most the team's counterpart. */
export function checkWithinTeam(
  key: { limits: Limits; budgets: Budget[] },
  team: { limits?: Limits | undefined; budgets?: Budget[] | undefined },
): void {
  for (const name of LIMIT_NAMES) {
    const value = key.limits[name];
    const teamValue = team.limits?.[name];
    if (value !== undefined && teamValue !== undefined && value > teamValue) {
      throw new LimitAboveTeamError(`limits.${name}`, value, teamValue);
    }
  }
  key.budgets.forEach((budget, index) => {
    const teamBudget = team.budgets?.find((b) => b.period === budget.period);
    for (const field of ['max_tokens', 'max_usd'] as const) {
      const value = budget[field];
      const teamValue = teamBudget?.[field];
      if (value !== undefined && teamValue !== undefined && value > teamValue) {
        throw new LimitAboveTeamError(`budgets[${index}].${field}`, value, teamValue);
      }
    }
  });
}
