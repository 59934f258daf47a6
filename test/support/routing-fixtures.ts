import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeUpstream } from './fake-upstream.js';
import { type GatewayProcess, startGatewayProcess } from './gateway-process.js';

/** What the routing suites share: upstream handlers' type and the answers they build. */
export type UpstreamHandler = Parameters<FakeUpstream['on']>[2];

export const CHAT = '/v1/chat/completions';
export const ROUTING_USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };

/** A chat completion whose content (and model) names who answered. */
export function completion(from: string) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: from,
    choices: [
      { index: 0, message: { role: 'assistant', content: from }, finish_reason: 'stop', logprobs: null },
    ],
    usage: ROUTING_USAGE,
  };
}

export function chunk(content: string) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { content }, finish_reason: null, logprobs: null }],
  };
}

/**
 * Two gateway processes on one Redis, serving `model` from a deployment on `failingUrl` (tried
 * first) and one on `healthyUrl`: two attempts per request, a circuit that opens after two
 * failures and stays open (600 s: tests end cool-downs through the store, not by waiting).
 */
export async function startFailoverPair(options: {
  model: string;
  failingUrl: string;
  healthyUrl: string;
  redisUrl: string;
}): Promise<{ first: GatewayProcess; second: GatewayProcess; stop: () => Promise<void> }> {
  const configDir = mkdtempSync(join(tmpdir(), 'tollgate-failover-'));
  const configFile = join(configDir, 'tollgate.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      auth: 'none',
      backends: {
        failing: { type: 'openai', baseUrl: `${options.failingUrl}/v1`, apiKey: 'k1' },
        healthy: { type: 'openai', baseUrl: `${options.healthyUrl}/v1`, apiKey: 'k2' },
      },
      models: {
        [options.model]: {
          strategy: 'priority',
          deployments: [
            { backend: 'failing', model: 'm' },
            { backend: 'healthy', model: 'm', priority: 1 },
          ],
          retry: { attempts: 2, backoffMs: 1, maxBackoffMs: 5 },
          circuit: { failures: 2, cooldownMs: 600_000 },
        },
      },
    }),
  );
  const env = { REDIS_URL: options.redisUrl, TOLLGATE_CONFIG: configFile };
  const [first, second] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
  return {
    first,
    second,
    stop: async () => {
      await Promise.all([first.stop(), second.stop()]);
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}
