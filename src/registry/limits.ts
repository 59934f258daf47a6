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

/** One value of a key (or a key policy) above its team's counterpart, each with its field name. */
interface AboveTeam {
  param: string;
  value: number;
  teamParam: string;
  teamValue: number;
}

function firstAboveTeam(
  key: { limits: Limits; budgets: Budget[] },
  team: { limits?: Limits | undefined; budgets?: Budget[] | undefined },
): AboveTeam | undefined {
  for (const name of LIMIT_NAMES) {
    const value = key.limits[name];
    const teamValue = team.limits?.[name];
    if (value !== undefined && teamValue !== undefined && value > teamValue) {
      return { param: `limits.${name}`, value, teamParam: `limits.${name}`, teamValue };
    }
  }
  for (const [index, budget] of key.budgets.entries()) {
    const teamIndex = team.budgets?.findIndex((b) => b.period === budget.period) ?? -1;
    const teamBudget = team.budgets?.[teamIndex];
    for (const field of ['max_tokens', 'max_usd'] as const) {
      const value = budget[field];
      const teamValue = teamBudget?.[field];
      if (value !== undefined && teamValue !== undefined && value > teamValue) {
        return {
          param: `budgets[${index}].${field}`,
          value,
          teamParam: `budgets[${teamIndex}].${field}`,
          teamValue,
        };
      }
    }
  }
  return undefined;
}

/** Throws unless every limit and budget the key sets is at most the team's counterpart. */
export function checkWithinTeam(
  key: { limits: Limits; budgets: Budget[] },
  team: { limits?: Limits | undefined; budgets?: Budget[] | undefined },
): void {
  const above = firstAboveTeam(key, team);
  if (above) throw new LimitAboveTeamError(above.param, above.value, above.teamValue);
}

/**
 * A default key policy set looser than its team's limits reads as if keys made from it could use
 * more than the team allows: refused when the policy is set (create, or a PATCH that sends it).
 */
export class PolicyLimitAboveTeamError extends GatewayError {
  constructor(above: AboveTeam) {
    const policyParam = `default_key_policy.${above.param}`;
    super(
      400,
      'invalid_request_error',
      'limit_exceeds_team',
      `A team's default key policy can only be tighter than the team's own limits: ${policyParam} is ${above.value}, the team's ${above.teamParam} is ${above.teamValue}; lower ${policyParam} or raise ${above.teamParam}.`,
      { param: policyParam },
    );
  }
}

/**
 * A default key policy's limits and budgets, each at most the team's counterpart: a team may
 * lower its own below its policy at any time (cutting spend must never wait on editing the
 * policy), and the keys made from the policy then take the team's value, which binds anyway.
 */
export function policyWithinTeam(
  policy: { limits: Limits; budgets: Budget[] },
  team: { limits?: Limits | undefined; budgets?: Budget[] | undefined },
): { limits: Limits; budgets: Budget[] } {
  const limits: Limits = { ...policy.limits };
  for (const name of LIMIT_NAMES) {
    const own = limits[name];
    const teamValue = team.limits?.[name];
    if (own !== undefined && teamValue !== undefined) limits[name] = Math.min(own, teamValue);
  }
  const budgets = policy.budgets.map((budget) => {
    const teamBudget = team.budgets?.find((b) => b.period === budget.period);
    const capped: Budget = { ...budget };
    for (const field of ['max_tokens', 'max_usd'] as const) {
      const own = capped[field];
      const teamValue = teamBudget?.[field];
      if (own !== undefined && teamValue !== undefined) capped[field] = Math.min(own, teamValue);
    }
    return capped;
  });
  return { limits, budgets };
}

/** Throws unless the policy's limits and budgets are at most the team's. */
export function checkPolicyWithinTeam(
  policy: { limits?: Limits | undefined; budgets?: Budget[] | undefined } | null | undefined,
  team: { limits?: Limits | undefined; budgets?: Budget[] | undefined },
): void {
  if (!policy) return;
  const above = firstAboveTeam({ limits: policy.limits ?? {}, budgets: policy.budgets ?? [] }, team);
  if (above) throw new PolicyLimitAboveTeamError(above);
}
