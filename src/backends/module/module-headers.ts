import { validateHeaderName, validateHeaderValue } from 'node:http';

/**
 * `x-` headers that are the gateway's own (the request's id, which backend and cache answered,
 * the caller's rate limits, retry advice, proxy buffering): the gateway sets them, a module's
 * value would replace the gateway's or lie to the client about it.
 */
const GATEWAY_OWNED: ReadonlySet<string> = new Set(['x-request-id', 'x-should-retry', 'x-accel-buffering']);
const GATEWAY_OWNED_PREFIXES: readonly string[] = ['x-tollgate-', 'x-ratelimit-'];

/** What an upstream's error may tell the client, as the HTTP adapters relay it. */
const RETRY_HEADERS: ReadonlySet<string> = new Set(['retry-after', 'retry-after-ms', 'x-should-retry']);

/**
 * A module's own header: `x-` and not the gateway's. Every other header describes the gateway's
 * HTTP answer, which is the gateway's to set: its framing (content-length, ...), caching, CORS
 * (access-control-*), cookies, security policies. The HTTP adapters relay none of an upstream's
 * headers on a success; a module may add its own metadata, nothing more.
 */
function isModulesOwn(name: string): boolean {
  return (
    name.startsWith('x-') &&
    !GATEWAY_OWNED.has(name) &&
    !GATEWAY_OWNED_PREFIXES.some((prefix) => name.startsWith(prefix))
  );
}

function isValidHeader(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The headers of a module's answer (`answer`) or of a GatewayError it threw (`error`, which may
 * also carry the retry advice an upstream's error does) that reach the client, names lower-cased.
 * One HTTP cannot carry (a CR or LF in its value, a space in its name) is dropped and reported to
 * `onInvalid`, rather than failing the answer: a header is metadata, and a module echoing a
 * client's text into one must not let that client turn its answers into 502s (which count
 * against the backend's circuit for everyone).
 */
export function moduleHeaders(
  value: unknown,
  of: 'answer' | 'error',
  onInvalid: (name: string) => void,
): Record<string, string> {
  const headers: Record<string, string> = {};
  if (value === null || typeof value !== 'object') return headers;
  for (const [given, item] of Object.entries(value)) {
    if (typeof item !== 'string') continue;
    if (!isValidHeader(given, item)) {
      onInvalid(given);
      continue;
    }
    const name = given.toLowerCase();
    if (isModulesOwn(name) || (of === 'error' && RETRY_HEADERS.has(name))) headers[name] = item;
  }
  return headers;
}
