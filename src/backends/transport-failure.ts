import { errors as undiciErrors } from 'undici';
import { GatewayError, UpstreamError, UpstreamTimeoutError } from '../errors.js';

/** The client went away; nobody is left to answer, so callers just stop. */
export class ClientAbortedError extends Error {
  constructor() {
    super('client disconnected');
    this.name = 'ClientAbortedError';
  }
}

export interface FailureContext {
  backend: string;
  totalTimedOut: boolean;
  clientAborted: boolean;
}

/**
 * Maps a transport failure (undici error, abort, socket error) to the gateway's typed errors.
 * Messages name the backend (its config name) but never its URL or credentials. Every adapter
 * that speaks HTTP upstream uses it, so a refused connection or a timeout reads the same (and
 * is retried the same) whichever provider is behind it.
 */
export function mapUpstreamFailure(error: unknown, context: FailureContext): Error {
  if (error instanceof GatewayError) return error;
  if (context.clientAborted) return new ClientAbortedError();
  const where = `backend '${context.backend}'`;
  if (context.totalTimedOut)
    return new UpstreamTimeoutError(`The upstream request to ${where} exceeded its total timeout.`);
  if (error instanceof undiciErrors.ConnectTimeoutError) {
    return new UpstreamTimeoutError(`Connecting to ${where} timed out.`);
  }
  if (error instanceof undiciErrors.HeadersTimeoutError) {
    return new UpstreamTimeoutError(`${capitalise(where)} did not start answering in time.`);
  }
  if (error instanceof undiciErrors.BodyTimeoutError) {
    return new UpstreamTimeoutError(`${capitalise(where)} went silent in the middle of its answer.`);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') return new UpstreamError(`Could not connect to ${where}: connection refused.`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new UpstreamError(`Could not resolve the host of ${where}.`);
  return new UpstreamError(
    `The connection to ${where} failed${typeof code === 'string' ? ` (${code})` : ''}.`,
  );
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
