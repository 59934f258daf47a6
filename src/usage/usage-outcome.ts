import { GatewayError, UpstreamClientError, UpstreamError, UpstreamTimeoutError } from '../errors.js';
import type { UsageOutcome } from './usage-record.js';

/**
 * Which usage count a finished request falls in (see UsageOutcome). `error` is what the
 * pipeline threw, if anything: it tells the upstream's own error answers (relayed with their
 * status, a 429 among them) from the gateway's refusals.
 */
export function outcomeOf(status: number, error: unknown, streamError: boolean): UsageOutcome {
  if (
    streamError ||
    error instanceof UpstreamClientError ||
    error instanceof UpstreamError ||
    error instanceof UpstreamTimeoutError
  )
    return 'failed';
  if (error === undefined && status < 400) return 'served';
  // Every 429 the gateway writes itself comes from a limit or a budget (request rates, tokens
  // per minute, concurrency, budgets, a request too large for one of them). Its own error says
  // 429 whatever status the surface answers with: Anthropic's is 402 billing_error for a budget.
  if (status === 429 || (error instanceof GatewayError && error.status === 429)) return 'rejected';
  if (status >= 400 && status < 500) return 'invalid';
  return 'failed';
}
