import { type ChildProcess, execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { hasRedisServerBinary } from './redis.js';
import { spawnTracked } from './spawned-servers.js';

export interface TestRedisCluster {
  /** Seed nodes as `127.0.0.1:<port>`, the form `redis.cluster.nodes` takes. */
  nodes: string[];
  stop: () => Promise<void>;
}

const MASTERS = 3;
/** Redis listens for the cluster bus on port + 10000, so both must be free and below 65536. */
const BUS_OFFSET = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ports P with P and P + 10000 free; picked at random so parallel runs rarely collide. */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (ports.includes(port) || ports.includes(port + BUS_OFFSET) || ports.includes(port - BUS_OFFSET))
      continue;
    if ((await portIsFree(port)) && (await portIsFree(port + BUS_OFFSET))) ports.push(port);
  }
  return ports;
}

/** One short-lived connection per command: the nodes are not a cluster yet, so no Cluster client. */
async function nodeCommand(port: number, command: string, ...args: string[]): Promise<unknown> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, children: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const dead = children.find((child) => child.exitCode !== null || child.signalCode !== null);
    if (dead)
      throw new Error(`redis-server exited (${dead.exitCode ?? dead.signalCode}) while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function redisCli(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error)
        reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

async function startOnce(): Promise<TestRedisCluster> {
  const ports = await clusterPorts(MASTERS);
  const nodes: Array<{ child: ChildProcess; dir: string }> = [];
  // A test run that dies without afterAll must not leave cluster nodes running.
  const killAll = () => {
    for (const { child } of nodes)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const stop = async () => {
    process.off('exit', killAll);
    await Promise.all(
      nodes.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    for (const { dir } of nodes) rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const port of ports) {
      const dir = mkdtempSync(join(tmpdir(), `tollgate-cluster-${port}-`));
      const child = spawnTracked(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { cwd: dir, stdio: 'ignore' },
      );
      nodes.push({ child, dir });
    }
    const children = nodes.map((node) => node.child);
    await waitFor(
      'the nodes to answer PING',
      async () =>
        (await Promise.all(ports.map((port) => nodeCommand(port, 'PING')))).every((a) => a === 'PONG'),
      children,
    );
    await redisCli([
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      'cluster_state:ok on every node',
      async () =>
        (await Promise.all(ports.map((port) => nodeCommand(port, 'CLUSTER', 'INFO')))).every(
          (info) => typeof info === 'string' && info.includes('cluster_state:ok'),
        ),
      children,
    );
    return { nodes: ports.map((port) => `127.0.0.1:${port}`), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function hasRedisCliBinary(): boolean {
  return spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * A real 3-master Redis Cluster of throwaway redis-server processes (nothing kept on disk
 * after stop()). Where redis-server or redis-cli is missing it says so loudly and returns
 * undefined, so Cluster suites skip visibly rather than pass silently.
 */
export async function startRedisCluster(): Promise<TestRedisCluster | undefined> {
  if (!hasRedisServerBinary() || !hasRedisCliBinary()) {
    process.stderr.write(
      '\n!!! REDIS CLUSTER SUITES SKIPPED: redis-server / redis-cli are not on PATH.     !!!\n' +
        '!!! Install Redis (apt-get install redis-server) to run them.                 !!!\n\n',
    );
    return undefined;
  }
  // A spare port can be taken between our check and redis-server binding it; try again then.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * Deletes every key matching `pattern`, on each master of a Cluster. Keys go one by one
 * because a multi-key DEL across slots is refused even when one node holds them all.
 */
export async function deleteKeys(client: Redis | Cluster, pattern: string): Promise<void> {
  const servers = client instanceof Cluster ? client.nodes('master') : [client];
  for (const server of servers) {
    for (const key of await scanKeys(server, pattern)) await server.del(key);
  }
}

/** Every key matching `pattern` on one server (SCAN, never KEYS, so a shared Redis is not blocked). */
export async function scanKeys(server: Redis, pattern: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    for (const key of keys) found.add(key);
    cursor = next;
  } while (cursor !== '0');
  return [...found];
}

export interface LeasedDatabase {
  /** The Redis URL with this database selected, for RedisStore / the gateway's config. */
  url: string;
  /** A client on that database, for the suite's own setup and inspection. */
  client: Redis;
  release: () => Promise<void>;
}

const LEASE_KEY = 'tollgate-test:lease';

/**
 * An empty logical database (1-15) that no other suite is using, so suites that wipe or scan `tg:*`
 * can share one REDIS_URL (several engineers, parallel test files) without disturbing each
 * other or whatever uses database 0. The lease is a key outside `tg:*` that expires by itself
 * if a run dies before release().
 */
export async function leaseRedisDatabase(url: string): Promise<LeasedDatabase> {
  const token = randomBytes(8).toString('hex');
  for (let db = 1; db <= 15; db++) {
    const client = new Redis(url, { db, lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw error;
    }
    const won = await client.set(LEASE_KEY, token, 'PX', 120_000, 'NX');
    // Some suites use a fixed database without leasing it: take only an empty one.
    if (won !== 'OK' || (await client.dbsize()) > 1) {
      if (won === 'OK') await client.del(LEASE_KEY);
      client.disconnect();
      continue;
    }
    const selected = new URL(url);
    selected.pathname = `/${db}`;
    return {
      url: selected.toString(),
      client,
      release: async () => {
        if ((await client.get(LEASE_KEY)) === token) await client.del(LEASE_KEY);
        client.disconnect();
      },
    };
  }
  throw new Error(
    `no free Redis database (1-15) at ${url}: each is leased by another run or already holds data`,
  );
}
