import type { ConfigInput } from '../../src/config/schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './admin-http.js';
import { startGateway, type TestGateway } from './gateway.js';

/**
 * A gateway on the built-in mock (under each of `models`' names) with keys required and the test
 * admin key, and an admin client for it: what the admin API's suites start from.
 */
export async function startAdminGateway(
  models: ConfigInput['models'] = { mock: { backend: 'mock' } },
): Promise<{ gw: TestGateway; admin: AdminHttp }> {
  const gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: { mock: { type: 'mock' } },
    models,
  });
  return { gw, admin: new AdminHttp(gw.url) };
}
