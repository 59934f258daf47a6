import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { KeyAuthenticator, type Principal } from '../src/pipeline/auth.js';
import { QuotaStage } from '../src/pipeline/quota.js';
import { validateAdmit, validateScopes } from '../src/quota/quota-types.js';
import { seal } from '../src/quota/sealed-scopes.js';
import { newKey } from '../src/registry/key-material.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { keyPrincipal as withoutLimits } from './support/key-principal.js';
import { keyRecord, teamRecord } from './support/registry-records.js';

/**
 * ② quota builds a key's scopes once per key, model and budget day (sealed, so the stores keep
 * their checks and script JSON): what a request counts against must still follow the day, the
 * model and the key's current limits.
 */
/** A key whose team has a day budget of 100 tokens, unless `overrides` says otherwise. */
const keyPrincipal = (overrides: Parameters<typeof withoutLimits>[0] = {}) =>
  withoutLimits({ teamBudgets: [{ period: 'day', max_tokens: 100 }], ...overrides });

async function stage(now: () => number) {
  const config = loadConfig({ env: {} });
  const store = await MemoryStore.open();
  return { store, quota: new QuotaStage(store, config.quota, now) };
}

const ask = (principal: Principal, model = 'm', maxTokens = 60) => ({
  principal,
  endpoint: 'chat.completions' as const,
  body: { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens },
  upstreamModel: model,
  model,
});

describe('a key\u2019s quota scopes, built once a day', () => {
  it('the same principal gets a fresh day budget after midnight', async () => {
    let now = Date.UTC(2026, 11, 7, 23, 59);
    const { store, quota } = await stage(() => now);
    const principal = keyPrincipal();
    const first = await quota.reserve(ask(principal));
    await first.settle({ prompt_tokens: 10, completion_tokens: 60, total_tokens: 70 });
    await expect(quota.reserve(ask(principal))).rejects.toMatchObject({ status: 429 });
    now = Date.UTC(2026, 11, 8, 0, 1);
    const next = await quota.reserve(ask(principal));
    await next.release();
    const standing = await quota.standing(
      'team-1',
      'team:team-1',
      {},
      principal.kind === 'key' ? principal.teamBudgets : [],
    );
    expect(standing).toMatchObject({ budgets: [{ period_key: '2026-12-08', spent_tokens: 0 }] });
    await store.close();
  });

  it('a model\u2019s own limits apply to that model only, whichever was asked first', async () => {
    const { store, quota } = await stage(() => Date.UTC(2026, 11, 7, 12));
    const principal = keyPrincipal({
      teamBudgets: [],
      teamModelLimits: { small: { budgets: [{ period: 'day', max_tokens: 50 }] } },
    });
    await (await quota.reserve(ask(principal, 'big'))).release();
    await expect(quota.reserve(ask(principal, 'small'))).rejects.toMatchObject({ status: 429 });
    await (await quota.reserve(ask(principal, 'big'))).release();
    await store.close();
  });

  it('a principal with new limits (① auth looked the key up again) is held to them at once', async () => {
    const { store, quota } = await stage(() => Date.UTC(2026, 11, 7, 12));
    await (await quota.reserve(ask(keyPrincipal()))).release();
    const tightened = keyPrincipal({ teamBudgets: [{ period: 'day', max_tokens: 20 }] });
    await expect(quota.reserve(ask(tightened))).rejects.toMatchObject({ status: 429 });
    await store.close();
  });
});

describe('① auth hands out one principal per lookup', () => {
  it('the same object until the key is looked up again, then one with the current limits', async () => {
    let now = Date.UTC(2026, 11, 7, 12);
    const store = await MemoryStore.open();
    const team = teamRecord({ id: 'team-1', budgets: [{ period: 'day', max_tokens: 1_000 }] });
    const { key: secret, hash } = newKey('k1');
    const key = keyRecord('team-1', { id: 'k1', hash });
    await store.registry.insertTeam(team);
    await store.registry.insertKey(key);
    const auth = new KeyAuthenticator(
      store,
      { cacheTtlMs: 1_000, staleOkSeconds: 60, cacheSize: 100 },
      () => now,
    );
    const quota = new QuotaStage(store, loadConfig({ env: {} }).quota, () => now);
    const credential = { presented: secret, hash };
    const first = await auth.authenticate(credential);
    expect(await auth.authenticate(credential)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    await (await quota.reserve(ask(first))).release();

    // An admin tightens the team's day budget: held to it once the key is looked up again.
    await store.registry.updateTeam({
      ...team,
      budgets: [{ period: 'day', max_tokens: 20 }],
      updatedAt: now,
    });
    now += 1_001;
    const next = await auth.authenticate(credential);
    expect(next).not.toBe(first);
    expect(next.kind === 'key' && next.teamBudgets).toEqual([{ period: 'day', max_tokens: 20 }]);
    await expect(quota.reserve(ask(next))).rejects.toMatchObject({ status: 429 });
    await store.close();
  });
});

describe('sealed scope lists', () => {
  it('are checked like any other, and a bad one is refused every time', () => {
    const bad = seal([{ id: 'team:t', tokensPerMinute: -1 }]);
    expect(() => validateScopes(bad)).toThrow(/non-negative integers/);
    expect(() => validateScopes(bad)).toThrow(/non-negative integers/);
    const twice = seal([{ id: 'key:k' }, { id: 'key:k' }]);
    expect(() => validateAdmit({ teamId: 't', nowMs: 1, requests: twice })).toThrow(/unique/);
    expect(() => validateAdmit({ teamId: 't', nowMs: 1, requests: twice })).toThrow(/unique/);
    // Checked as request-rate scopes says nothing of the limit scopes' checks.
    const both = seal([{ id: 'team:t', tokensPerMinute: -1 }]);
    expect(() => validateAdmit({ teamId: 't', nowMs: 1, requests: both })).not.toThrow();
    expect(() => validateScopes(both)).toThrow(/non-negative integers/);
    const good = seal([{ id: 'team:t', tokensPerMinute: 5 }]);
    expect(() => validateScopes(good)).not.toThrow();
    expect(() => validateScopes(good)).not.toThrow();
  });
});
