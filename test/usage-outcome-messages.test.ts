import { describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway } from './support/gateway.js';
import { gatewayStores } from './support/gateway-stores.js';
import { pollUntil } from './support/poll.js';

/**
 * The Messages API answers the gateway's budget refusal with Anthropic's 402 billing_error: the
 * request log still counts it `rejected` (the gateway's limit), as the OpenAI surface's 429 is.
 */

const stores = gatewayStores();

interface LoggedRequest {
  request_id: string;
  status: number;
  outcome: string | null;
}

describe.each(stores)('outcome of a budget refusal on /v1/messages ($name)', (store) => {
  it('is rejected, with the 402 the client got', async (context) => {
    if (!store.available()) context.skip('no Redis here');
    const redisUrl = store.url();
    const gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      ...(redisUrl ? { redis: { url: redisUrl } } : {}),
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    try {
      const admin = new AdminHttp(gw.url);
      // Smaller than any request's estimate: refused before the upstream, with no spend needed.
      const key = await admin.teamKey({ budgets: [{ period: 'day', max_tokens: 1 }] });
      const response = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(response.status).toBe(402);
      expect(((await response.json()) as { error: { type: string } }).error.type).toBe('billing_error');
      const requestId = response.headers.get('request-id');
      // Records are written in batches after the answer: read the log until this one is in it.
      const logged = await pollUntil(
        async () =>
          (await admin.ok<{ data: LoggedRequest[] }>('GET', '/requests?limit=100')).data.find(
            (entry) => entry.request_id === requestId,
          ),
        (entry) => entry !== undefined,
      );
      expect(logged).toMatchObject({ status: 402, outcome: 'rejected' });
    } finally {
      await gw.close();
    }
  });
});
