import {
  GATEWAY_ERROR_BRAND,
  GatewayError,
  type OpenAIErrorType,
  ServiceUnavailableError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../../errors.js';
import { ClientAbortedError } from '../transport-failure.js';
import type { ModuleBackendLogger } from './module-backend-api.js';
import { moduleHeaders } from './module-headers.js';

const ERROR_TYPES: ReadonlySet<string> = new Set<OpenAIErrorType>([
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'rate_limit_error',
  'tokens',
  'insufficient_quota',
  'server_error',
]);

export interface ContainContext {
  backend: string;
  logger: ModuleBackendLogger;
  /** What the gateway asked for, in the log line ("send", "listModels", ...). */
  operation: string;
  requestId?: string | undefined;
  clientAborted: boolean;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

/**
 * A GatewayError the module threw deliberately, rebuilt as this gateway's own class: a module
 * imports `tollgate` from wherever its author installed it, so its error classes may be another
 * copy of ours, which `instanceof` (the error handler's, the retry logic's) would not recognise.
 * Only the package's errors are: they carry its brand. Another library's error with a `status`
 * and a `type` (the `openai` SDK's, for one) is a failure like any other, its words unsent.
 */
function asGatewayError(error: unknown, context: ContainContext): GatewayError | undefined {
  const fields = record(error);
  if (!fields || !(error instanceof Error)) return undefined;
  if ((error as { [GATEWAY_ERROR_BRAND]?: unknown })[GATEWAY_ERROR_BRAND] !== true) return undefined;
  const headers = moduleHeaders(fields.headers, 'error', invalidHeaderLogger(context));
  if (error instanceof GatewayError) {
    // Ours already: only its headers are the module's to check (the gateway's own stay its own),
    // on a copy: a module may throw one shared instance again and again.
    return error.with({ headers });
  }
  const { status, type, code, param } = fields;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599)
    return undefined;
  if (typeof type !== 'string' || !ERROR_TYPES.has(type)) return undefined;
  const upstreamBody = fields.upstreamBody;
  if (upstreamBody instanceof Uint8Array) {
    const contentType =
      typeof fields.upstreamContentType === 'string' ? fields.upstreamContentType : undefined;
    return new UpstreamClientError(status, Buffer.from(upstreamBody), contentType, headers);
  }
  if (code === 'upstream_error' && status === 502) return new UpstreamError(error.message);
  if (code === 'upstream_timeout' && status === 504) return new UpstreamTimeoutError(error.message);
  if (code === 'service_unavailable' && status === 503) {
    const retryAfter = Number(headers['retry-after']);
    return new ServiceUnavailableError(error.message, Number.isFinite(retryAfter) ? retryAfter : undefined);
  }
  return new GatewayError(
    status,
    type as OpenAIErrorType,
    typeof code === 'string' ? code : null,
    error.message,
    {
      param: typeof param === 'string' ? param : null,
      headers,
    },
  );
}

/**
 * What the client gets for anything a module's code threw or rejected with: its own
 * GatewayErrors as they are; a client that left, as a client that left; anything else a 502
 * whose message names the backend and the request but never the module's own words or stack
 * (they go to the log, which is where an operator looks).
 */
export function containError(error: unknown, context: ContainContext): Error {
  if (context.clientAborted) return new ClientAbortedError();
  const deliberate = asGatewayError(error, context);
  if (deliberate) return deliberate;
  // No `backend` here: the logger is the module's child logger, which names it already.
  context.logger.error(
    {
      operation: context.operation,
      ...(context.requestId ? { requestId: context.requestId } : {}),
      err: error,
    },
    'backend module failed',
  );
  return new UpstreamError(
    `Backend '${context.backend}' failed: its module threw an error${
      context.requestId ? ` (request ${context.requestId}; the gateway's log has the details)` : ''
    }.`,
  );
}

/** A module's answer broke the Backend contract: a 502 for the client, the reason in the log. */
export function malformedAnswer(reason: string, context: ContainContext): UpstreamError {
  context.logger.error(
    {
      operation: context.operation,
      ...(context.requestId ? { requestId: context.requestId } : {}),
      reason,
    },
    'backend module answered outside the Backend contract',
  );
  return new UpstreamError(`Backend '${context.backend}' gave a malformed answer: ${reason}.`);
}

/** Logs a header the module set that HTTP cannot carry (dropped, not sent). */
export function invalidHeaderLogger(context: ContainContext): (name: string) => void {
  return (name) =>
    context.logger.warn(
      {
        operation: context.operation,
        ...(context.requestId ? { requestId: context.requestId } : {}),
        header: name.slice(0, 100),
      },
      'backend module: dropped a header whose name or value HTTP cannot carry',
    );
}
