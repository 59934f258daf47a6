// Two or more builds or settings side by side:
//   node bench/compare.mjs <rounds> <checkout>[:settleHoldMs[:nodeFlags]] ...
// e.g. `node bench/compare.mjs 6 ../before . ` (two builds, each checkout built first),
// `node bench/compare.mjs 6 .:0 .:5` (this build, settles held 0 and 5 ms) or
// `node bench/compare.mjs 6 . .::--single-threaded-gc` (node flags, comma-separated, for one).
//
// BENCH_STORE=redis (the default): the Redis path with section 6's team and key (every limit and
// two budgets) and one throwaway redis-server for all gateways. BENCH_STORE=embedded: the
// embedded store (no Redis) with a team key without limits, as `npm run bench`'s "tollgate".
//
// One mock upstream for all; each gateway runs `dist/server.js` of its checkout pinned to core 0,
// everything else on core 1 (as bench/reference.mjs). Per round and gateway, in an order that
// alternates between rounds: BENCH_DURATION_SEC (10) at an evenly paced BENCH_QUOTA_RATE (1,000)
// req/s, then BENCH_MAX_SEC (6) at BENCH_CONNECTIONS (50) connections. Gateway (and Redis) CPU
// from /proc and Redis commands from INFO commandstats, each divided by every request the job
// sent. Prints each round and the medians; writes every round to bench/results/compare.json.
// BENCH_GATEWAY_FLAGS: node flags added to every gateway's command line (e.g. `--cpu-prof
// --cpu-prof-dir=<dir>`: each gateway writes a V8 CPU profile of its whole run when stopped).
// BENCH_REDIS_DETAIL=1 also prints, per job, each Redis command's calls and Redis's own time per
// request (a script's time includes the commands it calls, which are listed too).
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createTeamAndKey } from './lib/admin.mjs';
import { freePorts, pinToCores, readCpuMs, runInChild, ServerProcess, stopAll } from './lib/procs.mjs';
import { readRedisCounters, redisDelta, startRedis } from './lib/redis.mjs';
import { median } from './lib/stats.mjs';
import { CHAT_BODY, MODEL, mockGatewayConfig, QUOTA_KEY, QUOTA_TEAM } from './lib/workload.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LOADGEN = path.join(HERE, 'lib', 'loadgen.mjs');
const ADMIN_KEY = 'bench-admin-key-0123456789';
const rate = Number(process.env.BENCH_QUOTA_RATE ?? 1000);
const pacedSec = Number(process.env.BENCH_DURATION_SEC ?? 10);
const maxSec = Number(process.env.BENCH_MAX_SEC ?? 6);
const warmupSec = Number(process.env.BENCH_WARMUP ?? 15);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const storeKind = process.env.BENCH_STORE ?? 'redis';
if (storeKind !== 'redis' && storeKind !== 'embedded') {
  process.stderr.write(`BENCH_STORE=${storeKind}: expected redis or embedded\n`);
  process.exit(2);
}
const onRedis = storeKind === 'redis';
/** Extra node flags for every gateway, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` for a profile. */
const gatewayFlags = (process.env.BENCH_GATEWAY_FLAGS ?? '').split(/\s+/).filter(Boolean);
/** Per Redis command: calls and Redis's own µs (INFO commandstats) per request, for each job. */
const redisDetail = process.env.BENCH_REDIS_DETAIL === '1';

const [roundsArg, ...specs] = process.argv.slice(2);
const rounds = Number(roundsArg);
if (!Number.isInteger(rounds) || rounds < 1 || specs.length === 0) {
  process.stderr.write(
    'usage: [BENCH_STORE=redis|embedded] node bench/compare.mjs <rounds> <checkout>[:settleHoldMs[:nodeFlags]] ...\n',
  );
  process.exit(2);
}
const gatewaysAsked = specs.map((spec) => {
  const [dir = '.', hold, flags] = spec.split(':');
  const root = path.resolve(dir);
  try {
    readFileSync(path.join(root, 'dist', 'server.js'));
  } catch {
    throw new Error(`${root}/dist/server.js not found: run \`npm run build\` there first.`);
  }
  return {
    label: spec,
    root,
    holdMs: hold === undefined || hold === '' ? undefined : Number(hold),
    flags: flags ? flags.split(',') : [],
  };
});

const { pinning, onFirstCore } = pinToCores();

const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-compare-'));
const [mockPort, redisPort, ...gatewayPorts] = await freePorts(2 + gatewaysAsked.length);
const mock = new ServerProcess('mock', process.execPath, [path.join(HERE, 'mock-upstream.mjs')], {
  cwd: HERE,
  env: { ...process.env, PORT: String(mockPort) },
  stdout: 'ignore',
});
await mock.waitReady(`http://127.0.0.1:${mockPort}/healthz`, 10_000);
const redis = onRedis
  ? await startRedis(/** @type {number} */ (redisPort), { cwd: HERE, env: process.env })
  : undefined;

const gateways = [];
for (const [i, asked] of gatewaysAsked.entries()) {
  const port = /** @type {number} */ (gatewayPorts[i]);
  const config = path.join(work, `gateway-${i}.yaml`);
  const hold = asked.holdMs === undefined ? '' : `, settleHoldMs: ${asked.holdMs}`;
  writeFileSync(
    config,
    mockGatewayConfig({
      port,
      upstreamOrigin: `http://127.0.0.1:${mockPort}`,
      adminKey: ADMIN_KEY,
      dataDir: path.join(work, `data-${i}`),
      extra: [
        ...(onRedis ? [`redis: { url: "redis://127.0.0.1:${redisPort}" }`] : []),
        `quota: { prices: { ${MODEL}: { input: 1, output: 2 } }${hold} }`,
      ],
    }),
  );
  const args = [
    '--max-semi-space-size=16',
    ...gatewayFlags,
    ...asked.flags,
    'dist/server.js',
    '--config',
    config,
  ];
  const [command, commandArgs] = onFirstCore(args);
  const server = new ServerProcess(asked.label, command, commandArgs, {
    cwd: asked.root,
    env: { ...process.env, MALLOC_TRIM_THRESHOLD_: '131072', LOG_LEVEL: 'info' },
    stdout: openSync(path.join(work, `gateway-${i}.log`), 'w'),
  });
  const origin = `http://127.0.0.1:${port}`;
  await server.waitReady(`${origin}/healthz`, 30_000);
  const created = onRedis
    ? await createTeamAndKey(
        origin,
        ADMIN_KEY,
        { ...QUOTA_TEAM, name: `compare-${i}` },
        { ...QUOTA_KEY, name: `compare-${i}` },
      )
    : await createTeamAndKey(origin, ADMIN_KEY, { name: `compare-${i}` }, { name: `compare-${i}` });
  gateways.push({ label: asked.label, server, origin, key: created.key });
}

const body = CHAT_BODY;
/** @param {typeof gateways[number]} gateway */
const spec = (gateway) => ({
  origin: gateway.origin,
  path: '/v1/chat/completions',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${gateway.key}` },
  body,
});

/**
 * @param {typeof gateways[number]} gateway
 * @param {object} job
 */
async function measure(gateway, job) {
  const cpu0 = readCpuMs(gateway.server.pid);
  const redisCpu0 = redis ? readCpuMs(redis.pid) : 0;
  const counters0 = redis ? await readRedisCounters(/** @type {number} */ (redisPort)) : undefined;
  const result = /** @type {import('./lib/loadgen.mjs').RequestRunResult} */ (
    await runInChild(LOADGEN, { ...spec(gateway), ...job }, 180_000)
  );
  const cpu1 = readCpuMs(gateway.server.pid);
  const redisCpu1 = redis ? readCpuMs(redis.pid) : 0;
  const delta =
    counters0 && redisDelta(counters0, await readRedisCounters(/** @type {number} */ (redisPort)));
  const sent = result.completedTotal;
  if (delta && redisDetail) {
    const perCommand = Object.entries(delta.commands)
      .filter(([, count]) => count.calls / sent >= 0.005)
      .map(
        ([name, count]) =>
          `${name} ${(count.calls / sent).toFixed(2)} (${(count.usec / sent).toFixed(1)} µs)`,
      );
    process.stdout.write(`  ${gateway.label} ${job.kind}, Redis per request: ${perCommand.join(', ')}\n`);
  }
  const scripts = delta ? (delta.commands.evalsha?.calls ?? 0) + (delta.commands.eval?.calls ?? 0) : 0;
  return {
    reqPerSec: result.reqPerSec,
    p50Ms: result.latencyMs.p50,
    p99Ms: result.latencyMs.p99,
    gatewayCpuUs: ((cpu1 - cpu0) * 1000) / sent,
    redisCpuUs: ((redisCpu1 - redisCpu0) * 1000) / sent,
    redisCommands: delta ? delta.totalCommands / sent : 0,
    scriptCalls: scripts / sent,
    failed: result.non2xx + result.errors,
  };
}

/** @typedef {Awaited<ReturnType<typeof measure>>} Measured */

/** One line of figures per request; Redis's only when there is a Redis. @param {Measured} paced @param {Measured} max */
function describe(paced, max) {
  const redisPaced = onRedis
    ? `, Redis ${paced.redisCpuUs.toFixed(0)} µs, ${paced.redisCommands.toFixed(2)} commands (${paced.scriptCalls.toFixed(2)} scripts)`
    : '';
  const redisMax = onRedis
    ? `, Redis ${max.redisCpuUs.toFixed(0)} µs, ${max.redisCommands.toFixed(2)} commands`
    : '';
  return (
    `${rate} req/s: gateway ${paced.gatewayCpuUs.toFixed(0)} µs${redisPaced}, p50 ${paced.p50Ms.toFixed(2)} / p99 ${paced.p99Ms.toFixed(1)} ms; ` +
    `max ${max.reqPerSec.toFixed(0)} req/s, gateway ${max.gatewayCpuUs.toFixed(0)} µs${redisMax}`
  );
}

const rows = [];
try {
  // V8 moves a request's hot functions to TurboFan only after 10,000 to 25,000 requests.
  for (const gateway of gateways)
    await runInChild(
      LOADGEN,
      { ...spec(gateway), kind: 'max', connections, durationSec: warmupSec },
      (warmupSec + 60) * 1000,
    );
  for (let round = 0; round < rounds; round++) {
    for (const gateway of round % 2 === 0 ? gateways : [...gateways].reverse()) {
      await sleep(500);
      const paced = await measure(gateway, { kind: 'paced', rate, durationSec: pacedSec, warmupSec: 1 });
      await sleep(500);
      const max = await measure(gateway, { kind: 'max', connections, durationSec: maxSec });
      rows.push({ round, gateway: gateway.label, paced, max });
      process.stdout.write(
        `round ${round} ${gateway.label}: ${describe(paced, max)}; failed ${paced.failed + max.failed}\n`,
      );
    }
  }
} finally {
  await stopAll(2_000);
}

process.stdout.write('\nmedians per request\n');
for (const gateway of gateways) {
  const mine = rows.filter((row) => row.gateway === gateway.label);
  /** @param {(row: typeof rows[number]) => number} pick */
  const m = (pick) => median(mine.map(pick));
  /** @param {'paced' | 'max'} job */
  const medians = (job) =>
    /** @type {Measured} */ (
      Object.fromEntries(
        Object.keys(mine[0]?.[job] ?? {}).map((field) => [
          field,
          m((r) => r[job][/** @type {keyof Measured} */ (field)]),
        ]),
      )
    );
  process.stdout.write(`${gateway.label}: ${describe(medians('paced'), medians('max'))}\n`);
}
const results = path.join(HERE, 'results');
mkdirSync(results, { recursive: true });
writeFileSync(
  path.join(results, 'compare.json'),
  `${JSON.stringify({ pinning, store: storeKind, rate, rows }, null, 2)}\n`,
);
