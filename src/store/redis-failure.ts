import { TLSSocket } from 'node:tls';
import { type Cluster, Redis } from 'ioredis';
import type { RedisTarget } from './redis-client.js';

/**
 * Redis cannot be used, said for the operator: which Redis (never its password) and why. The
 * 503 clients get says neither (StoreUnavailableError); this is its `cause`, and what the
 * gateway prints when it cannot start.
 */
export class RedisFailureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisFailureError';
  }
}

/** An address as shown: its password (if any) left out. */
function withoutPassword(address: string): string {
  try {
    const url = new URL(address.includes('://') ? address : `redis://${address}`);
    // ioredis also reads a password from the query (`?password=`): neither is shown.
    const queried = url.searchParams.has('password');
    if (url.password === '' && !queried) return address;
    url.password = '';
    url.searchParams.delete('password');
    return address.includes('://') ? url.href : url.host;
  } catch {
    return address;
  }
}

/** Which Redis the target is, for messages. */
export function redisTargetName(target: RedisTarget): string {
  if ('url' in target) return withoutPassword(target.url);
  if ('sentinel' in target)
    return `the Sentinel master '${target.sentinel.name}' (Sentinels ${target.sentinel.sentinels.map(withoutPassword).join(', ')})`;
  return `the Redis Cluster of ${target.cluster.nodes.map(withoutPassword).join(', ')}`;
}

/** The database the target selects (the URL's path, or ?db= as ioredis reads it). */
export function redisTargetDatabase(target: RedisTarget): number {
  if ('sentinel' in target) return target.sentinel.db ?? 0;
  if (!('url' in target)) return 0;
  try {
    const url = new URL(target.url);
    const path = url.pathname.replace(/^\//, '');
    return Number(path || url.searchParams.get('db') || 0);
  } catch {
    return 0;
  }
}

/** True for the error ioredis emits when Redis refuses the SELECT of the configured database. */
export function isSelectRefusal(error: unknown): boolean {
  const command = (error as { command?: { name?: unknown } } | null)?.command;
  return error instanceof Error && error.name === 'ReplyError' && command?.name === 'select';
}

export function wrongDatabaseMessage(target: RedisTarget, refusal: Error): string {
  const db = redisTargetDatabase(target);
  return `Redis at ${redisTargetName(target)} has no database ${db} (it answered: ${firstLine(refusal)}); a Redis server has databases 0 to one less than its 'databases' setting (16 unless set otherwise)`;
}

function firstLine(error: Error): string {
  return error.message.split('\n')[0] ?? '';
}

const CERTIFICATE_CODES =
  /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;

/** Why the last connection attempt failed, in our words. */
function reason(error: Error): string {
  const lastNodeError = (error as { lastNodeError?: unknown }).lastNodeError;
  if (lastNodeError instanceof Error) return reason(lastNodeError);
  const code = (error as NodeJS.ErrnoException).code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused: nothing listens at that address and port';
    case 'ENOTFOUND':
      return 'host not found: its name does not resolve';
    case 'EAI_AGAIN':
      return 'its host name could not be resolved (DNS did not answer)';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host cannot be reached from here';
    case 'ECONNRESET':
      return 'the connection was closed by the other side (a Redis that expects TLS does this to redis://: use rediss://)';
  }
  if (CERTIFICATE_CODES.test(code)) return `its TLS certificate was not accepted (${code})`;
  if (/SSL|TLS/.test(code))
    return `the TLS handshake failed (${code}): if this Redis does not use TLS, use redis:// instead of rediss://`;
  const message = firstLine(error);
  if (/^NOAUTH\b/.test(message)) return 'it requires a password, and none was given';
  if (/^WRONGPASS\b/.test(message)) return 'it refused the username or password';
  if (/^LOADING\b/.test(message)) return 'it is still loading its data';
  if (/^All sentinels are unreachable/.test(message)) return 'none of the Sentinels could be reached';
  return error.name === 'ReplyError' ? `it answered: ${message}` : message;
}

/**
 * Why `client` has not connected: its last error, or else what the connection is doing (a TLS
 * client talking to a plain Redis waits for a handshake answer that never comes).
 */
export function unreachableMessage(
  target: RedisTarget,
  client: Redis | Cluster,
  lastError: Error | undefined,
  waitedMs: number,
): string {
  const name = redisTargetName(target);
  if (lastError) return `cannot reach Redis at ${name}: ${reason(lastError)}`;
  const stream = client instanceof Redis ? client.stream : undefined;
  // ioredis says `connecting` until the TLS handshake is done; the socket says whether TCP is.
  if (client.status === 'connecting' && stream instanceof TLSSocket && !stream.connecting)
    return `cannot reach Redis at ${name}: connected, but the TLS handshake got no answer in ${waitedMs} ms; if this Redis does not use TLS, use redis:// instead of rediss://`;
  return `cannot reach Redis at ${name}: no answer in ${waitedMs} ms`;
}

/**
 * Why a connection that was up cannot be used now, said for the operator: which Redis and why
 * (its last connection error, or that it stopped answering), never its password.
 */
export function outageMessage(target: RedisTarget, lastError: Error | undefined, stalled: boolean): string {
  const name = redisTargetName(target);
  if (stalled) return `Redis at ${name} stopped answering: a command went unanswered past its deadline`;
  return `cannot reach Redis at ${name}: ${lastError ? reason(lastError) : 'the connection was lost'}`;
}
