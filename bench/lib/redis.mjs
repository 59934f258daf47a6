// A throwaway redis-server for the "tollgate+redis" target, and the few commands the benchmark
// sends it itself (PING, INFO) over a plain socket: no client library, so nothing talks to that
// Redis behind our back (ioredis, for one, sends INFO for its ready check on every connect).
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServerProcess } from './procs.mjs';

/**
 * Starts `redis-server` on 127.0.0.1:`port` with persistence off, in its own process group (so
 * stopAll() kills it with the servers), and waits until it answers PING.
 * @param {number} port
 * @param {{ env: NodeJS.ProcessEnv, cwd: string }} options
 * @returns {Promise<ServerProcess>}
 */
export async function startRedis(port, options) {
  const redis = new ServerProcess(
    'redis-server',
    process.env.BENCH_REDIS_SERVER ?? 'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
    ],
    { cwd: options.cwd, env: options.env, stdout: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  let lastProblem = 'no answer yet';
  while (Date.now() < deadline) {
    if (!redis.alive)
      throw new Error(`redis-server ${redis.exitReason} before it was ready.\n${redis.describeTail()}`);
    try {
      if ((await redisCommand(port, ['PING'])) === 'PONG') return redis;
    } catch (error) {
      lastProblem = String(error);
    }
    await sleep(50);
  }
  throw new Error(`redis-server not ready after 10 s (${lastProblem}).\n${redis.describeTail()}`);
}

/**
 * Sends one command on a fresh connection and resolves with the reply (simple and bulk strings
 * only, which is all PING and INFO answer).
 * @param {number} port
 * @param {readonly string[]} args
 * @returns {Promise<string>}
 */
export function redisCommand(port, args) {
  const payload = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    /** @type {Buffer[]} */
    const chunks = [];
    let settled = false;
    /** @param {Error | null} error @param {string} [value] */
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (error) reject(error);
      else resolve(value ?? '');
    };
    socket.setTimeout(5000, () => finish(new Error('redis: no answer within 5 s')));
    socket.on('error', (error) => finish(error));
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const buffer = Buffer.concat(chunks);
      const lineEnd = buffer.indexOf('\r\n');
      if (lineEnd === -1) return;
      const head = buffer.subarray(0, lineEnd).toString('utf8');
      if (head.startsWith('+')) finish(null, head.slice(1));
      else if (head.startsWith('-')) finish(new Error(`redis: ${head.slice(1)}`));
      else if (head.startsWith('$')) {
        const length = Number(head.slice(1));
        if (length < 0) finish(null, '');
        else if (buffer.length >= lineEnd + 2 + length) {
          finish(null, buffer.subarray(lineEnd + 2, lineEnd + 2 + length).toString('utf8'));
        }
      } else finish(new Error(`redis: unexpected reply ${JSON.stringify(head)}`));
    });
  });
}

/**
 * @typedef {object} CommandCount
 * @property {number} calls
 * @property {number} usec time Redis spent executing them
 */
/**
 * @typedef {object} RedisCounters
 * @property {number} at performance.now() when the reading was taken
 * @property {number} totalCommands total_commands_processed
 * @property {Record<string, CommandCount>} commands from INFO commandstats, by lower-case name
 *   (subcommands as `client|setname`)
 */

/**
 * One INFO call for both sections. Redis counts a command after running it, so a reading does
 * not include itself, but the next reading includes the previous one's INFO: `infoCallsBetween`
 * removes exactly that.
 * @param {number} port
 * @returns {Promise<RedisCounters>}
 */
export async function readRedisCounters(port) {
  const text = await redisCommand(port, ['INFO', 'stats', 'commandstats']);
  const at = performance.now();
  const total = /^total_commands_processed:(\d+)/m.exec(text);
  if (total === null) throw new Error('redis: INFO has no total_commands_processed');
  /** @type {Record<string, CommandCount>} */
  const commands = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands[String(match[1])] = { calls: Number(match[2]), usec: Number(match[3]) };
  }
  return { at, totalCommands: Number(total[1]), commands };
}

/**
 * @typedef {object} RedisDelta
 * @property {number} elapsedMs
 * @property {number} totalCommands commands other than our own INFO readings
 * @property {Record<string, CommandCount>} commands the same, by command
 */

/**
 * What Redis processed between two readings, minus the one INFO the earlier reading sent.
 * @param {RedisCounters} before
 * @param {RedisCounters} after
 * @returns {RedisDelta}
 */
export function redisDelta(before, after) {
  /** @type {Record<string, CommandCount>} */
  const commands = {};
  for (const [name, count] of Object.entries(after.commands)) {
    const earlier = before.commands[name] ?? { calls: 0, usec: 0 };
    // The earlier reading's own INFO is counted in the later one.
    const calls = count.calls - earlier.calls - (name === 'info' ? 1 : 0);
    if (calls <= 0) continue;
    commands[name] = { calls, usec: count.usec - earlier.usec };
  }
  return {
    elapsedMs: after.at - before.at,
    totalCommands: after.totalCommands - before.totalCommands - 1,
    commands,
  };
}

/**
 * Starts MONITOR on its own connection; `stop()` ends it and returns the lines seen meanwhile
 * (`<time> [<db> <client address | lua>] "command" ...`). MONITOR slows Redis down: only for a
 * small, separate sample, never during a latency measurement.
 * @param {number} port
 * @returns {Promise<{ stop: () => Promise<string[]> }>}
 */
export function monitorRedis(port) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let text = '';
    let started = false;
    socket.setEncoding('utf8');
    socket.on('error', (error) => {
      if (!started) reject(error);
    });
    socket.on('connect', () => socket.write('*1\r\n$7\r\nMONITOR\r\n'));
    socket.on('data', (/** @type {string} */ chunk) => {
      text += chunk;
      if (!started && text.startsWith('+OK\r\n')) {
        started = true;
        text = text.slice(5);
        resolve({
          stop: async () => {
            await sleep(100); // let the last lines arrive
            socket.destroy();
            return text
              .split('\r\n')
              .filter((line) => line.startsWith('+'))
              .map((line) => line.slice(1));
          },
        });
      }
    });
  });
}

/**
 * @typedef {object} MonitorSummary
 * @property {Record<string, number>} sent commands the gateway sent, by name
 * @property {Record<string, number>} inScripts commands Lua scripts ran, by name
 * @property {number} roundTrips commands sent, a MULTI…EXEC block counted once (ioredis sends it
 *   as one write)
 */

/**
 * Classifies MONITOR lines: sent by a client, or run by a script (`[0 lua]`).
 * @param {readonly string[]} lines
 * @returns {MonitorSummary}
 */
export function summarizeMonitor(lines) {
  /** @type {Record<string, number>} */
  const sent = {};
  /** @type {Record<string, number>} */
  const inScripts = {};
  let roundTrips = 0;
  let inMulti = false;
  for (const line of lines) {
    const match = /^\S+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
    if (match === null) continue;
    const source = String(match[1]);
    const name = String(match[2]).toLowerCase();
    if (source === 'lua') {
      inScripts[name] = (inScripts[name] ?? 0) + 1;
      continue;
    }
    sent[name] = (sent[name] ?? 0) + 1;
    if (name === 'multi') {
      inMulti = true;
      roundTrips += 1;
    } else if (name === 'exec' || name === 'discard') inMulti = false;
    else if (!inMulti) roundTrips += 1;
  }
  return { sent, inScripts, roundTrips };
}
