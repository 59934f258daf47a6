import type { onRequestHookHandler } from 'fastify';
import { GatewayError } from '../errors.js';
import { presentedKey } from '../pipeline/auth.js';
import type { FailedAuthLimiter } from '../pipeline/failed-auth-limiter.js';
import { publicIdOf } from '../registry/key-material.js';
import type { AdminKey } from './admin-key.js';

const MISSING =
  "You didn't provide the admin key. Send it as 'Authorization: Bearer <admin key>' (TOLLGATE_ADMIN_KEY).";
const INCORRECT = 'Incorrect admin key provided.';
const TEAM_KEY =
  'Incorrect admin key provided: this is a team API key; the admin API needs the admin key ' +
  '(tga-..., printed at first start, or the one set in TOLLGATE_ADMIN_KEY / admin.key).';

export class InvalidAdminKeyError extends GatewayError {
  constructor(presented: string | undefined) {
    const message = presented === undefined ? MISSING : publicIdOf(presented) ? TEAM_KEY : INCORRECT;
    super(401, 'invalid_request_error', 'invalid_admin_key', message, {
      headers: { 'x-should-retry': 'false' },
    });
  }
}

/**
 * The admin API's onRequest guard. Failures are counted per client IP (shared through Redis);
 * while an address is blocked nothing it presents is checked, the admin key included: a
 * correct key answered differently from a wrong one would let a guesser go on unslowed.
 */
export function adminAuthHook(
  adminKey: AdminKey,
  failedAuth: FailedAuthLimiter,
  isPublic: (url: string | undefined) => boolean,
): onRequestHookHandler {
  return (request, _reply, done) => {
    if (isPublic(request.routeOptions.url)) return done();
    try {
      failedAuth.assertNotBlocked(request);
    } catch (error) {
      return done(error as Error);
    }
    const presented = presentedKey(request);
    if (adminKey.matches(presented)) return done();
    failedAuth.recordFailure(request).then(
      (limited) => done(limited ?? new InvalidAdminKeyError(presented)),
      (error: Error) => done(error),
    );
  };
}
