import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashKey, secretsEqual } from '../registry/key-material.js';
import type { Store } from '../store/store.js';

const SETTING = 'admin_key_sha256';

/**
 * The admin API's credential. A configured key (TOLLGATE_ADMIN_KEY or `admin.key`) is compared
 * in constant time; with none configured, the first start generates one, stores only its
 * SHA-256, and reports the plaintext once so the operator can copy it.
 */
export class AdminKey {
  private constructor(private readonly check: (presented: string) => boolean) {}

  static async init(
    configured: string | undefined,
    store: Store,
  ): Promise<{ adminKey: AdminKey; generated: string | undefined }> {
    if (configured)
      return { adminKey: new AdminKey((p) => secretsEqual(p, configured)), generated: undefined };
    const candidate = `tga-${randomBytes(24).toString('base64url')}`;
    const stored = await store.registry.setSettingIfAbsent(SETTING, hashKey(candidate));
    const expected = Buffer.from(stored, 'hex');
    const adminKey = new AdminKey((presented) => {
      const actual = Buffer.from(hashKey(presented), 'hex');
      return actual.length === expected.length && timingSafeEqual(actual, expected);
    });
    return { adminKey, generated: stored === hashKey(candidate) ? candidate : undefined };
  }

  matches(presented: string | undefined): boolean {
    return presented !== undefined && this.check(presented);
  }
}
