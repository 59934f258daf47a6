import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load-config.js';

/** The models' routing options: the deployments form, fallbacks and their checks at boot. */
function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw, {}, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const backends = { a: { type: 'mock' }, b: { type: 'mock' } };
const ZOD_WORDING = /Too small|Too big|Invalid input|Invalid option|Unrecognized key|received/;

describe('models with deployments', () => {
  it('accepts the deployments form beside the one-line form and wildcards', () => {
    const config = parseConfig(
      {
        backends,
        models: {
          one: { backend: 'a', model: 'x' },
          many: {
            deployments: [
              { backend: 'a', weight: 2, limits: { requestsPerMinute: 10 } },
              { backend: 'b', model: 'y', name: 'second', priority: 1 },
            ],
            strategy: 'lowest-latency',
            fallbacks: ['one'],
            retry: { attempts: 2, deadlineMs: 5_000 },
            circuit: { failures: 3, failureRatio: 0.25 },
          },
          'p/*': { backend: 'b' },
          '*': { backend: 'a', fallbacks: ['many'] },
        },
      },
      {},
      'test',
    );
    // The one-line form parses exactly as it always did: no routing defaults appear in it.
    expect(config.models.one).toEqual({ backend: 'a', model: 'x' });
    expect(config.models.many?.deployments).toEqual([
      { backend: 'a', weight: 2, priority: 0, limits: { requestsPerMinute: 10 } },
      { backend: 'b', model: 'y', name: 'second', weight: 1, priority: 1, limits: {} },
    ]);
    expect(config.models.many?.retry).toEqual({
      attempts: 2,
      backoffMs: 250,
      maxBackoffMs: 5_000,
      maxRetryAfterMs: 10_000,
      deadlineMs: 5_000,
    });
    expect(config.models.many?.circuit).toMatchObject({ enabled: true, failures: 3, failureRatio: 0.25 });
  });

  it('lists every problem at once, in the gateway’s words', () => {
    const problems = problemsOf({
      backends,
      models: {
        both: { backend: 'a', deployments: [{ backend: 'a' }] },
        neither: { ownedBy: 'me' },
        modelToo: { model: 'x', deployments: [{ backend: 'a' }] },
        badDeployments: {
          deployments: [
            { backend: 'nope' },
            { backend: 'a', weight: 0 },
            { backend: 'a' },
            { backend: 'b', name: 'a' },
            { backend: 'a', limits: { requestsPerMinute: 1.5, burst: 3 } },
          ],
          strategy: 'fastest',
        },
        empty: { deployments: [] },
        badFallback: { backend: 'a', fallbacks: ['missing', '*'] },
        'w/*': { deployments: [{ backend: 'a' }] },
        badCircuit: { backend: 'a', circuit: { failureRatio: 0, cooldownMs: -1 }, retry: { attempts: 0 } },
      },
    });
    const expected = [
      'models.both: takes a backend or deployments, not both',
      'models.neither: needs a backend, or deployments (a list of {backend, model, weight, …})',
      'models.modelToo.model: with deployments, each deployment names its upstream model',
      "models.badDeployments.deployments.0.backend: unknown backend 'nope' (declared: a, b)",
      'models.badDeployments.deployments.1.weight: must be greater than 0',
      "models.badDeployments.deployments.2.name: another deployment of this model is already called 'a' (its backend's name unless set); give each its own name",
      "models.badDeployments.deployments.3.name: another deployment of this model is already called 'a' (its backend's name unless set); give each its own name",
      'models.badDeployments.deployments.4.limits.requestsPerMinute: expected a whole number, got a fraction',
      "models.badDeployments.deployments.4.limits: unknown option 'burst' (the options here: requestsPerMinute, tokensPerMinute, maxConcurrent)",
      "models.badDeployments.strategy: expected one of 'weighted', 'priority', 'least-in-flight', 'lowest-latency', 'lowest-cost', got 'fastest'",
      'models.empty.deployments: needs at least 1 entry',
      "models.badFallback.fallbacks: unknown model 'missing' (fallbacks name models declared under models, not wildcard routes)",
      "models.badFallback.fallbacks: unknown model '*' (fallbacks name models declared under models, not wildcard routes)",
      'models.w/*.deployments: a wildcard route takes one backend, not deployments',
      'models.badCircuit.circuit.failureRatio: must be greater than 0',
      'models.badCircuit.circuit.cooldownMs: must be greater than 0',
      'models.badCircuit.retry.attempts: must be at least 1',
    ];
    for (const problem of expected) expect(problems).toContain(problem);
    for (const problem of problems) expect(problem).not.toMatch(ZOD_WORDING);
  });

  it('takes one apiKey or a pool of apiKeys on a backend, not both', () => {
    const config = parseConfig(
      {
        backends: { o: { type: 'openai', apiKey: '', apiKeys: [{ key: 'k1', weight: 2 }, { key: 'k2' }] } },
        models: { m: { backend: 'o' } },
      },
      {},
      'test',
    );
    expect(config.backends.o).toMatchObject({
      apiKeys: [
        { key: 'k1', weight: 2 },
        { key: 'k2', weight: 1 },
      ],
    });
    const problems = problemsOf({
      backends: { o: { type: 'openai', apiKey: 'sk-one', apiKeys: [{ key: 'k1' }, { key: '', weight: 0 }] } },
      models: { m: { backend: 'o' } },
    });
    expect(problems).toEqual([
      'backends.o.apiKeys.1.key: must not be empty',
      'backends.o.apiKeys.1.weight: must be greater than 0',
      'backends.o: takes apiKey or apiKeys, not both',
    ]);
  });

  it('refuses fallbacks that go round in a circle, naming each circle once', () => {
    const problems = problemsOf({
      backends,
      models: {
        a: { backend: 'a', fallbacks: ['b'] },
        b: { backend: 'a', fallbacks: ['c'] },
        c: { backend: 'a', fallbacks: ['a'] },
        self: { backend: 'b', fallbacks: ['self'] },
        fine: { backend: 'b', fallbacks: ['a', 'c'] },
      },
    });
    expect(problems).toEqual([
      'models.a.fallbacks: fallbacks go round in a circle: a -> b -> c -> a',
      'models.self.fallbacks: fallbacks go round in a circle: self -> self',
    ]);
  });

  it('accepts chains and shared fallbacks that never come back', () => {
    expect(() =>
      parseConfig(
        {
          backends,
          models: {
            a: { backend: 'a', fallbacks: ['b', 'c'] },
            b: { backend: 'a', fallbacks: ['c'] },
            c: { backend: 'b' },
          },
        },
        {},
        'test',
      ),
    ).not.toThrow();
  });
});
