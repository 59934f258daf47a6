import { type ChildProcess, spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { isSelectRefusal, unreachableMessage } from '../src/store/redis-failure.js';
import { RedisStore } from '../src/store/redis-store.js';
import { StoreUnavailableError } from '../src/store/store-unavailable.js';
import { gatewayProcessEnv } from './support/gateway-process.js';
import { freePort, hasRedisServerBinary, waitForPing } from './support/redis.js';
import { REFUSED_PORT } from './support/refused-port.js';
import { spawnTracked } from './support/spawned-servers.js';

/**
 * A Redis database the server does not have stops the gateway at boot, naming it, and a
 * connection that lands in one later (Redis restarted with fewer databases) is refused instead
 * of writing to database 0: ioredis only reports the refused SELECT and carries on in 0. A Redis
 * the gateway cannot reach at boot is named (without its password), with the reason. Every
 * redis-server here is this suite's own.
 */
const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));
const available = hasRedisServerBinary();

const servers: ChildProcess[] = [];
const clients: Array<{ disconnect: () => void }> = [];
const stores: RedisStore[] = [];

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const client of clients.splice(0)) client.disconnect();
  for (const server of servers.splice(0)) await stopServer(server);
});

async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGKILL');
  await exited;
}

/** A throwaway redis-server on `port` with `databases` databases, nothing on disk. */
async function redisServer(port: number, databases: number): Promise<ChildProcess> {
  const child = spawnTracked(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--databases',
      String(databases),
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: 'ignore' },
  );
  servers.push(child);
  await waitForPing(`redis://127.0.0.1:${port}`, child);
  return child;
}

async function keysIn(port: number, db: number): Promise<number> {
  const client = new Redis(`redis://127.0.0.1:${port}/${db}`);
  try {
    return await client.dbsize();
  } finally {
    client.disconnect();
  }
}

function boot(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-redis-db-'));
  const child = spawn(process.execPath, [SERVER], {
    env: gatewayProcessEnv(dataDir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

describe.skipIf(!available)('a database the Redis server does not have', () => {
  it.each([
    ['the gateway generates its admin key', {}],
    [
      'the admin key is set, so nothing is written at boot',
      { TOLLGATE_ADMIN_KEY: 'an-admin-key-of-24-chars' },
    ],
  ])('stops the boot, naming the database (%s)', async (_name, extra: Record<string, string>) => {
    const port = await freePort();
    await redisServer(port, 4);
    const { code, output } = await boot({ REDIS_URL: `redis://127.0.0.1:${port}/9`, ...extra });
    expect(code).toBe(1);
    expect(output.trim()).toBe(
      `tollgate failed to start: REDIS_URL (redis.url): Redis at redis://127.0.0.1:${port}/9 has no database 9 (it answered: ERR DB index is out of range); a Redis server has databases 0 to one less than its 'databases' setting (16 unless set otherwise)`,
    );
    expect(await keysIn(port, 0)).toBe(0);
  });

  it('after a reconnect to a server without it: refused (503), never written to database 0, and used again once it is back', async () => {
    const port = await freePort();
    let server = await redisServer(port, 16);
    const store = new RedisStore({ target: { url: `redis://127.0.0.1:${port}/3` } });
    stores.push(store);
    expect(await store.registry.setSettingIfAbsent('first', 'a')).toBe('a');
    expect(await keysIn(port, 3)).toBe(1);

    const refused = new Promise<void>((resolve) =>
      store.client.on('error', (error) => {
        if (isSelectRefusal(error)) resolve();
      }),
    );
    await stopServer(server);
    server = await redisServer(port, 2);
    await refused;
    const error = await store.registry.setSettingIfAbsent('second', 'b').then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(((error as Error).cause as Error).message).toMatch(/has no database 3 /);
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await keysIn(port, 0)).toBe(0);

    const ready = new Promise<void>((resolve) => store.client.once('ready', () => resolve()));
    await stopServer(server);
    await redisServer(port, 16);
    await ready;
    expect(await store.registry.setSettingIfAbsent('third', 'c')).toBe('c');
    expect(await keysIn(port, 3)).toBe(1);
    expect(await keysIn(port, 0)).toBe(0);
  });
});

describe.skipIf(!available)('a Redis the gateway cannot reach at boot', () => {
  it('connection refused: which Redis (without its password) and why', async () => {
    const { code, output } = await boot({ REDIS_URL: `redis://:hunter2@127.0.0.1:${REFUSED_PORT}/1` });
    expect(code).toBe(1);
    expect(output.trim()).toBe(
      `tollgate failed to start: REDIS_URL (redis.url): cannot reach Redis at redis://127.0.0.1:${REFUSED_PORT}/1: connection refused: nothing listens at that address and port`,
    );
  });

  it('rediss:// to a Redis without TLS: the handshake is named', async () => {
    const port = await freePort();
    await redisServer(port, 16);
    const { code, output } = await boot({ REDIS_URL: `rediss://127.0.0.1:${port}` });
    expect(code).toBe(1);
    expect(output.trim()).toMatch(
      new RegExp(
        `^tollgate failed to start: REDIS_URL \\(redis\\.url\\): cannot reach Redis at rediss://127\\.0\\.0\\.1:${port}: connected, but the TLS handshake got no answer in \\d+ ms; if this Redis does not use TLS, use redis:// instead of rediss://$`,
      ),
    );
  });

  it('a host name that does not resolve is said to be one', async () => {
    const error = await lookup('tollgate-no-such-host.invalid').then(
      () => undefined,
      (thrown: unknown) => thrown as Error,
    );
    expect(error).toBeInstanceOf(Error);
    const client = new Redis({ lazyConnect: true });
    clients.push(client);
    expect(
      unreachableMessage({ url: 'redis://tollgate-no-such-host.invalid:6379' }, client, error, 2000),
    ).toBe(
      'cannot reach Redis at redis://tollgate-no-such-host.invalid:6379: host not found: its name does not resolve',
    );
  });
});
