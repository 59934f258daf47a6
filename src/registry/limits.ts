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

type LimitsAndBudgets = { limits: Limits; budgets: Budget[] };
type TeamLimits = { limits?: Limits | undefined; budgets?: Budget[] | undefined };

/** A value a key (or a key policy) sets and its team's counterpart, each with its field name. */
interface Counterpart {
  param: string;
  value: number;
  teamParam: string;
  teamValue: number;
  /** Sets the value to the team's in `copy`, a copy of the key's (or policy's) values. */
  lowerTo(copy: LimitsAndBudgets): void;
}

/** Every limit and budget both set: limits by name, budgets by period and field. */
function* counterparts(own: LimitsAndBudgets, team: TeamLimits): Generator<Counterpart> {
  for (const name of LIMIT_NAMES) {
    const value = own.limits[name];
    const teamValue = team.limits?.[name];
    if (value === undefined || teamValue === undefined) continue;
    const param = `limits.${name}`;
    yield { param, value, teamParam: param, teamValue, lowerTo: (copy) => (copy.limits[name] = teamValue) };
  }
  for (const [index, budget] of own.budgets.entries()) {
    const teamIndex = team.budgets?.findIndex((b) => b.period === budget.period) ?? -1;
    const teamBudget = team.budgets?.[teamIndex];
    for (const field of ['max_tokens', 'max_usd'] as const) {
      const value = budget[field];
      const teamValue = teamBudget?.[field];
      if (value === undefined || teamValue === undefined) continue;
      yield {
        param: `budgets[${index}].${field}`,
        value,
        teamParam: `budgets[${teamIndex}].${field}`,
        teamValue,
        lowerTo: (copy) => {
          (copy.budgets[index] as Budget)[field] = teamValue;
        },
      };
    }
  }
}

function firstAboveTeam(own: LimitsAndBudgets, team: TeamLimits): Counterpart | undefined {
  for (const pair of counterparts(own, team)) if (pair.value > pair.teamValue) return pair;
  return undefined;
}

/** Throws unless every limit and budget the key sets is at most the team's counterpart. */
export function checkWithinTeam(key: LimitsAndBudgets, team: TeamLimits): void {
  const above = firstAboveTeam(key, team);
  if (above) throw new LimitAboveTeamError(above.param, above.value, above.teamValue);
}

/**
 * A default key policy set looser than its team's limits reads as if keys made from it could use
 * more than the team allows: refused when the policy is set (create, or a PATCH that sends it).
 */
export class PolicyLimitAboveTeamError extends GatewayError {
  constructor(above: Counterpart) {
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
export function policyWithinTeam(policy: LimitsAndBudgets, team: TeamLimits): LimitsAndBudgets {
  const copy = { limits: { ...policy.limits }, budgets: policy.budgets.map((budget) => ({ ...budget })) };
  for (const pair of counterparts(policy, team)) if (pair.value > pair.teamValue) pair.lowerTo(copy);
  return copy;
}

/** Throws unless the policy's limits and budgets are at most the team's. */
export function checkPolicyWithinTeam(
  policy: { limits?: Limits | undefined; budgets?: Budget[] | undefined } | null | undefined,
  team: TeamLimits,
): void {
  if (!policy) return;
  const above = firstAboveTeam({ limits: policy.limits ?? {}, budgets: policy.budgets ?? [] }, team);
  if (above) throw new PolicyLimitAboveTeamError(above);
}
