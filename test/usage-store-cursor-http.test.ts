import { describe, expect, it } from 'vitest';
import { AdminHttp, type ErrorBody, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway } from './support/gateway.js';
import { gatewayStores } from './support/gateway-stores.js';

/**
 * `GET /admin/requests?before=` with a cursor the log never gave out is the client's mistake: a
 * 400 naming `before` in the admin API's error shape, on the embedded store as on Redis (whose
 * XREVRANGE refuses such an id with an error that was a 500).
 */

const stores = gatewayStores();

describe.each(stores)('GET /admin/requests with a cursor it never gave out ($name)', (store) => {
  it('is a 400 naming before, never a 500', async (context) => {
    if (!store.available()) context.skip('no Redis here');
    const redisUrl = store.url();
    const gw = await startGateway({
      admin: { key: TEST_ADMIN_KEY },
      ...(redisUrl ? { redis: { url: redisUrl } } : {}),
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    try {
      const admin = new AdminHttp(gw.url);
      for (const before of ['abc', '1796676238640-4x', '99999999999999999999999-0']) {
        const response = await admin.call<ErrorBody>('GET', `/requests?before=${encodeURIComponent(before)}`);
        expect(response.status, before).toBe(400);
        expect(response.body.error, before).toMatchObject({ type: 'invalid_request_error', param: 'before' });
      }
    } finally {
      await gw.close();
    }
  });
});

describe('GET /admin/requests with a limit out of range', () => {
  it('names the bound as the integer it is, though a query sends it as text', async () => {
    const gw = await startGateway({
      admin: { key: TEST_ADMIN_KEY },
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    try {
      const response = await new AdminHttp(gw.url).call<ErrorBody>('GET', '/requests?limit=1000');
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ param: 'limit' });
      expect(response.body.error.message).toMatch(
        /^Invalid 'limit': integer above maximum value\. Expected a value <= \d+, but got 1000 instead\.$/,
      );
    } finally {
      await gw.close();
    }
  });
});
