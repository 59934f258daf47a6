/**
 * Redis addresses as the config gives them, checked at boot so that a mistake is listed with
 * the file's other problems instead of failing later inside ioredis (`Invalid URL`, or a
 * `SELECT NaN` that crashed the process). Messages never repeat the address: it may hold a
 * password.
 */

/** Redis keeps databases numbered from 0; the highest a server may be configured with. */
const MAX_DATABASE = 2_147_483_647;

/** host[:port] of an address's authority: the problem with it, or undefined. */
function authorityProblem(authority: string): string | undefined {
  const at = authority.lastIndexOf('@');
  const hostPort = at === -1 ? authority : authority.slice(at + 1);
  let host: string;
  let port: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close === -1) return 'has an IPv6 address without its closing ]';
    host = hostPort.slice(0, close + 1);
    const rest = hostPort.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return 'has something after its IPv6 address other than :port';
    port = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = hostPort.lastIndexOf(':');
    host = colon === -1 ? hostPort : hostPort.slice(0, colon);
    port = colon === -1 ? undefined : hostPort.slice(colon + 1);
  }
  if (host === '') return 'names no host';
  if (port === undefined || port === '') return undefined;
  if (!/^\d+$/.test(port)) return 'has a port that is not a number: expected a port from 1 to 65535';
  const number = Number(port);
  if (number < 1 || number > 65_535) return 'has a port out of range: expected a port from 1 to 65535';
  return undefined;
}

function databaseProblem(text: string, where: string): string | undefined {
  if (/^\d+$/.test(text) && Number(text) <= MAX_DATABASE) return undefined;
  return `has a database (${where}) that is not a whole number: expected one such as /0, or none for 0`;
}

/** `redis://[user:password@]host[:port][/db]` (or rediss:// for TLS): the problem, or undefined. */
export function redisUrlProblem(url: string): string | undefined {
  const scheme = /^rediss?:\/\//i.exec(url);
  if (!scheme) return 'expected a redis:// or rediss:// URL';
  const rest = url.slice(scheme[0].length);
  const end = rest.search(/[/?#]/);
  const problem = authorityProblem(end === -1 ? rest : rest.slice(0, end));
  if (problem) return problem;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL (check the host name for spaces or other characters a URL cannot hold)';
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/') {
    const path = databaseProblem(parsed.pathname.slice(1), 'the part after the host');
    if (path) return path;
  }
  // ioredis takes options from the query too, `db` among them.
  const db = parsed.searchParams.get('db');
  if (db !== null) return databaseProblem(db, '?db=');
  return undefined;
}

/** A Sentinel's or a Cluster node's `host:port` (a redis:// prefix allowed): the problem, or undefined. */
export function redisNodeProblem(address: string): string | undefined {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(address);
  if (scheme && !/^rediss?:\/\/$/i.test(scheme[0])) return 'expected host:port, such as 10.0.0.5:26379';
  const rest = scheme ? address.slice(scheme[0].length) : address;
  if (/[/?#]/.test(rest.replace(/\/$/, '')))
    return 'expected host:port, such as 10.0.0.5:26379, with no path';
  const problem = authorityProblem(rest.replace(/\/$/, ''));
  if (problem) return problem;
  try {
    new URL(`redis://${rest}`);
  } catch {
    return 'is not a valid address (check the host name for spaces or other characters it cannot hold)';
  }
  return undefined;
}
