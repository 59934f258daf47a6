import { AdminApiError, GatewayUnreachableError, NotAdminApiError } from './admin-client.js';

/** The CLI's exit statuses: a contract with scripts, so only ever extended, never renumbered. */
export const ExitCode = {
  ok: 0,
  apiError: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unreachable: 5,
  /**
   * `serve` (and `node dist/server.js`): stopped, but gave up on writes it kept for Redis during
   * an outage (usage records, quota settles and releases), each logged as an error. Otherwise
   * serve exits 0 when it stopped cleanly, 1 when it could not, 2 for a usage error.
   */
  lostWrites: 6,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the gateway answered with another error (e.g. 400 invalid field, 409 team has active keys),
     or the URL is not the gateway's admin API (e.g. it ends in /v1)
  2  usage error: unknown command or option, missing or malformed argument or admin key
  3  not found (404): no such team or key
  4  authentication or authorization failed (401/403): missing or wrong admin key
  5  could not reach the gateway: connection refused, DNS failure, timeout
  6  serve only: it stopped, but gave up on writes Redis could not take (usage records, quota
     settles); serve exits 1 when it cannot stop cleanly`;

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof GatewayUnreachableError) return ExitCode.unreachable;
  // A 404, but not "no such team or key": a script must not read a wrong URL as "already gone".
  if (error instanceof NotAdminApiError) return ExitCode.apiError;
  if (error instanceof AdminApiError) {
    if (error.status === 404) return ExitCode.notFound;
    if (error.status === 401 || error.status === 403) return ExitCode.auth;
  }
  return ExitCode.apiError;
}
