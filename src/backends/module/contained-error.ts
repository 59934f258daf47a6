import {
  GatewayError,
  type OpenAIErrorType,
  ServiceUnavailableError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../../errors.js';
import { ClientAbortedError } from '../transport-failure.js';
import type { ModuleBackendLogger } from './module-backend-api.js';

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

function stringHeaders(value: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, item] of Object.entries(record(value) ?? {}))
    if (typeof item === 'string') headers[name] = item;
  return headers;
}

/**
 * A GatewayError the module threw deliberately, rebuilt as this gateway's own class: a module
 * imports `tollgate` from wherever its author installed it, so its error classes may be another
 * copy of ours, which `instanceof` (the error handler's, the retry logic's) would not recognise.
 */
function asGatewayError(error: unknown): GatewayError | undefined {
  if (error instanceof GatewayError) return error;
  const fields = record(error);
  if (!fields || !(error instanceof Error)) return undefined;
  const { status, type, code, param } = fields;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599)
    return undefined;
  if (typeof type !== 'string' || !ERROR_TYPES.has(type)) return undefined;
  const headers = stringHeaders(fields.headers);
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
  const deliberate = asGatewayError(error);
  if (deliberate) return deliberate;
  context.logger.error(
    {
      backend: context.backend,
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
      backend: context.backend,
      operation: context.operation,
      ...(context.requestId ? { requestId: context.requestId } : {}),
      reason,
    },
    'backend module answered outside the Backend contract',
  );
  return new UpstreamError(`Backend '${context.backend}' gave a malformed answer: ${reason}.`);
}
