import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load-config.js';

/**
 * Redis addresses are checked with the rest of the config, in our words, without repeating the
 * address (it may hold a password): not left to ioredis, where `/abc` crashed the process with
 * `SELECT NaN` and a port that is not a number said only `Invalid URL`.
 */
const base = { backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } };

function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    parseConfig({ ...base, ...raw }, {}, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('redis.url', () => {
  it.each([
    ['redis://127.0.0.1:6379'],
    ['redis://127.0.0.1:6379/'],
    ['redis://127.0.0.1:6379/14'],
    ['rediss://user:pa%3Ass@redis.example.com:6380/0'],
    ['redis://[::1]:6379/2'],
    ['redis://redis'],
    ['REDIS://127.0.0.1/3'],
    ['redis://127.0.0.1?db=3'],
  ])('accepts %s', (url) => {
    expect(problemsOf({ redis: { url } })).toEqual([]);
  });

  it.each([
    ['redis://127.0.0.1:6379/abc', /^redis\.url: has a database .* not a whole number/],
    ['redis://127.0.0.1:6379/-1', /^redis\.url: has a database .* not a whole number/],
    ['redis://127.0.0.1:6379/1/2', /^redis\.url: has a database .* not a whole number/],
    ['redis://127.0.0.1?db=x', /^redis\.url: has a database \(\?db=\) that is not a whole number/],
    [
      'redis://127.0.0.1:notaport/14',
      /^redis\.url: has a port that is not a number: expected a port from 1 to 65535$/,
    ],
    ['redis://127.0.0.1:70000', /^redis\.url: has a port out of range/],
    ['redis://127.0.0.1:0', /^redis\.url: has a port out of range/],
    ['redis://:6379', /^redis\.url: names no host$/],
    ['redis://bad host:6379', /^redis\.url: is not a valid URL/],
    ['http://127.0.0.1:6379', /^redis\.url: expected a redis:\/\/ or rediss:\/\/ URL$/],
  ])('refuses %s', (url, expected) => {
    const problems = problemsOf({ redis: { url }, server: { port: -1 } });
    // Listed with the file's other problems, never repeating the address.
    expect(problems).toHaveLength(2);
    expect(problems[1]).toMatch(expected);
    expect(problems.join('\n')).not.toContain(url);
  });

  it('never shows a password', () => {
    const problems = problemsOf({ redis: { url: 'redis://:hunter2hunter2@127.0.0.1:x/1' } });
    expect(problems).toHaveLength(1);
    expect(problems.join('\n')).not.toContain('hunter2');
  });
});

describe('Sentinel and Cluster addresses', () => {
  it('accepts host:port, [IPv6]:port and a redis:// prefix', () => {
    expect(
      problemsOf({
        redis: { sentinel: { name: 'm', sentinels: ['10.0.0.5:26379', '[::1]:26379', 'redis://s:1'] } },
      }),
    ).toEqual([]);
    expect(problemsOf({ redis: { cluster: { nodes: ['a:7000', 'b'] } } })).toEqual([]);
  });

  it('lists each bad one by its place', () => {
    expect(
      problemsOf({ redis: { sentinel: { name: 'm', sentinels: ['a:b', 'ok:1', 'h:70000', 'http://x:1'] } } }),
    ).toEqual([
      'redis.sentinel.sentinels.0: has a port that is not a number: expected a port from 1 to 65535',
      'redis.sentinel.sentinels.2: has a port out of range: expected a port from 1 to 65535',
      'redis.sentinel.sentinels.3: expected host:port, such as 10.0.0.5:26379',
    ]);
    expect(problemsOf({ redis: { cluster: { nodes: ['a:1', 'b:x/1'] } } })).toEqual([
      'redis.cluster.nodes.1: expected host:port, such as 10.0.0.5:26379, with no path',
    ]);
  });
});
