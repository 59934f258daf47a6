import type { GatewayContext } from '../http/request-context.js';
import type { AttemptRecord } from './attempts.js';
import type { TokenUsage } from './usage.js';

/**
 * What answering one request found out, as the stages return it: the forward path collects it
 * and writes it to `request.gateway` once, at its end, for the request log, the usage record
 * and the metrics (the only readers). The route (model, deployment) is not in it: ④ writes that
 * as soon as it is known, since ② request limits count per model.
 */
export interface ForwardOutcome {
  stream?: boolean | undefined;
  usage?: TokenUsage | undefined;
  /** The usage was counted by the gateway (the upstream reported none, or the client left). */
  usageEstimated?: boolean | undefined;
  /** The response ended with an error event after the 200 went out. */
  streamError?: boolean | undefined;
  /** performance.now() when the first streamed event went to the client. */
  firstChunkAt?: number | undefined;
  /** ⑤ each attempt over the deployments, in order (skipped candidates included). */
  attempts?: AttemptRecord[] | undefined;
}

/** The one place the forward path writes to `request.gateway`. */
export function recordOutcome(g: GatewayContext, outcome: ForwardOutcome): void {
  if (outcome.stream !== undefined) g.stream = outcome.stream;
  if (outcome.usage !== undefined) g.usage = outcome.usage;
  if (outcome.usageEstimated) g.usageEstimated = true;
  if (outcome.streamError) g.streamError = true;
  if (outcome.firstChunkAt !== undefined) g.firstChunkAt = outcome.firstChunkAt;
  if (outcome.attempts !== undefined && outcome.attempts.length > 0) g.attempts = outcome.attempts;
}
