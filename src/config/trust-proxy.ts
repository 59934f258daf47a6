import { isIP, isIPv4 } from 'node:net';

/** Names fastify's proxy-addr expands to address ranges. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

const EXPECTED =
  'expected an IP address or CIDR of your proxies (such as 10.0.0.0/8), or loopback, linklocal or uniquelocal';

/** 255.255.0.0 -> 16; undefined when the bits are not contiguous. */
function netmaskBits(mask: string): number | undefined {
  const value = mask.split('.').reduce((sum, part) => sum * 256 + Number(part), 0);
  const bits = value.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) return undefined;
  return bits.includes('0') ? bits.indexOf('0') : 32;
}

/**
 * One entry of `server.trustProxy` as fastify reads it (proxy-addr): the problem, or undefined.
 * Checked here because fastify only finds it while the server is built, in its own words.
 */
export function trustProxyEntryProblem(note: string): string | undefined {
  if (NAMED_RANGES.has(note)) return undefined;
  const slash = note.lastIndexOf('/');
  const address = slash === -1 ? note : note.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return EXPECTED;
  if (slash === -1) return undefined;
  const range = note.slice(slash + 1);
  const max = version === 4 ? 32 : 128;
  if (/^\d+$/.test(range)) {
    const bits = Number(range);
    return bits >= 1 && bits <= max
      ? undefined
      : `has a prefix length out of range: after the / it takes 1 to ${max} for an IPv${version} address`;
  }
  if (version === 4 && isIPv4(range)) {
    const bits = netmaskBits(range);
    return bits !== undefined && bits >= 1
      ? undefined
      : 'has a netmask that is not one (such as 255.255.0.0)';
  }
  return `has something after the / that is neither a prefix length (1 to ${max}) nor a netmask`;
}

/**
 * The problems of a `trustProxy` value, by entry: a text is read as a comma-separated list (as
 * fastify does), a list entry by entry. `at` is the entry's index when there are several.
 */
export function trustProxyProblems(value: string | string[]): Array<{ at?: number; problem: string }> {
  const list = typeof value === 'string';
  // fastify trims a text's entries, not a list's.
  const entries = list ? value.split(',').map((entry) => entry.trim()) : value;
  const problems: Array<{ at?: number; problem: string }> = [];
  entries.forEach((entry, i) => {
    const problem = trustProxyEntryProblem(entry);
    if (problem === undefined) return;
    if (!list) problems.push({ at: i, problem });
    else problems.push({ problem: entries.length > 1 ? `entry ${i + 1}: ${problem}` : problem });
  });
  return problems;
}
