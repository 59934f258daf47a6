import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { parseConfig } from '../src/config/load-config.js';
import { DEFAULT_RETRY } from '../src/config/schema.js';
import { ModelRouter } from '../src/pipeline/router.js';
import { RouteTable, upstreamModel } from '../src/routing/route-table.js';

const config = parseConfig(
  {
    backends: {
      openai: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1' },
      azure: { type: 'openai', baseUrl: 'http://127.0.0.1:2/v1' },
      mock: { type: 'mock' },
    },
    models: {
      alias: { backend: 'openai', model: 'gpt-4o-mini' },
      spared: { backend: 'openai', fallbacks: ['alias', 'plain'] },
      plain: { backend: 'mock' },
      'gpt-4o': {
        strategy: 'priority',
        deployments: [
          {
            backend: 'openai',
            name: 'key-1',
            weight: 3,
            limits: { requestsPerMinute: 500, tokensPerMinute: 30_000, maxConcurrent: 10 },
          },
          { backend: 'openai', name: 'key-2' },
          { backend: 'azure', model: 'my-deployment', priority: 1 },
        ],
        fallbacks: ['alias'],
        retry: { attempts: 5 },
        circuit: { failures: 2, cooldownMs: 1_000 },
      },
      off: { backend: 'mock', circuit: { enabled: false } },
      'ollama/*': { backend: 'azure' },
      '*': { backend: 'openai' },
    },
  },
  {},
  'test',
);
const table = new RouteTable(config.models);

describe('route table', () => {
  it('turns the one-line form into one deployment named after its backend: one attempt, no circuit', () => {
    const match = table.match('alias');
    expect(match?.route).toEqual({
      route: 'alias',
      deployments: [
        {
          id: 'alias/openai',
          name: 'openai',
          backend: 'openai',
          model: 'gpt-4o-mini',
          weight: 1,
          priority: 0,
          limits: {},
        },
      ],
      strategy: 'weighted',
      fallbacks: [],
      targeted: { context: [], contentPolicy: [] },
      retry: { ...DEFAULT_RETRY, attempts: 1 },
      oncePerCandidate: true,
      circuit: undefined,
      ownedBy: undefined,
    });
    expect(table.match('plain')?.route.deployments[0]?.model).toBe('plain');
    expect(table.match('off')?.route.circuit).toBeUndefined();
    // With fallbacks too: each candidate once (routing-attempts.test.ts), no circuit.
    expect(table.match('spared')?.route).toMatchObject({ oncePerCandidate: true, circuit: undefined });
    // A model with deployments, or a one-line one with its own retry, counts retry.attempts.
    expect(table.match('gpt-4o')?.route.oncePerCandidate).toBe(false);
  });

  it('keeps the deployments form in config order, with names, limits, strategy and policies', () => {
    const route = table.match('gpt-4o')?.route;
    expect(route?.deployments).toEqual([
      {
        id: 'gpt-4o/key-1',
        name: 'key-1',
        backend: 'openai',
        model: 'gpt-4o',
        weight: 3,
        priority: 0,
        limits: { requestsPerMinute: 500, tokensPerMinute: 30_000, maxConcurrent: 10 },
      },
      {
        id: 'gpt-4o/key-2',
        name: 'key-2',
        backend: 'openai',
        model: 'gpt-4o',
        weight: 1,
        priority: 0,
        limits: {},
      },
      {
        id: 'gpt-4o/azure',
        name: 'azure',
        backend: 'azure',
        model: 'my-deployment',
        weight: 1,
        priority: 1,
        limits: {},
      },
    ]);
    expect(route?.strategy).toBe('priority');
    expect(route?.fallbacks).toEqual(['alias']);
    expect(route?.retry).toEqual({ ...DEFAULT_RETRY, attempts: 5 });
    expect(route?.circuit).toMatchObject({ failures: 2, cooldownMs: 1_000, failureRatio: 0.5 });
  });

  it('matches wildcards after exact names, the longest prefix first, passing the name through', () => {
    const prefixed = table.match('ollama/llama3');
    expect(prefixed?.route.route).toBe('ollama/*');
    const [only] = prefixed?.route.deployments ?? [];
    expect(only).toMatchObject({ id: 'ollama/*/azure', backend: 'azure', model: undefined });
    if (!prefixed || !only) throw new Error('expected a match');
    expect(upstreamModel(prefixed, only)).toBe('llama3');
    const any = table.match('gpt-5');
    expect(any?.route.route).toBe('*');
    if (!any?.route.deployments[0]) throw new Error('expected a match');
    expect(upstreamModel(any, any.route.deployments[0])).toBe('gpt-5');
    expect(table.match('alias')?.route.route).toBe('alias');
    expect(new RouteTable({ only: { backend: 'mock' } }).match('other')).toBeUndefined();
    expect(table.routes().map((route) => route.route)).toEqual([
      'alias',
      'spared',
      'plain',
      'gpt-4o',
      'off',
      'ollama/*',
      '*',
    ]);
  });
});

describe('the router over the route table', () => {
  let backends: BackendRegistry;
  let router: ModelRouter;
  beforeAll(async () => {
    backends = await BackendRegistry.fromConfig(config, pino({ level: 'silent' }));
    router = new ModelRouter(config, backends);
  });
  afterAll(() => backends.close());

  it('resolves one-line and wildcard models as before', () => {
    expect(router.resolve('alias')).toMatchObject({
      publicName: 'alias',
      upstreamModel: 'gpt-4o-mini',
      name: 'openai',
      route: 'alias',
    });
    expect(router.resolve('ollama/llama3')).toMatchObject({ upstreamModel: 'llama3', name: 'azure' });
    expect(router.resolve('gpt-5')).toMatchObject({ upstreamModel: 'gpt-5', name: 'openai', route: '*' });
  });

  it('sends a model with deployments to one its strategy picks (tier 0 for priority)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const deployment = router.resolve('gpt-4o');
      seen.add(`${deployment.name}:${deployment.backend.name}:${deployment.upstreamModel}`);
      expect(deployment.route).toBe('gpt-4o');
    }
    expect([...seen].sort()).toEqual(['key-1:openai:gpt-4o', 'key-2:openai:gpt-4o']);
  });
});
