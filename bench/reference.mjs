// Where Tollgate's cost per request sits between the floor and what our stack costs by itself:
// `npm run build && node bench/reference.mjs` (~6 min).
//
// Four proxies answer the same mock upstream, one at a time, pinned to the first core (the load
// generator and the mock share the second), in rounds that rotate their order:
//   floor              bench/floor-proxy.mjs: node:http + undici, no parsing
//   fastify            bench/reference-gateway.mjs with REFERENCE_STEPS=fastify: fastify relays
//                      the bytes both ways
//   reference          bench/reference-gateway.mjs: the least a gateway on our stack does (JSON
//                      parse, hashed key, zod, model rewrite, usage parse, one pino line)
//   tollgate           dist/server.js on its defaults, a team key without limits
// Each gets a closed-loop run (BENCH_CONNECTIONS connections for BENCH_DURATION_SEC) and an
// open-loop run at BENCH_REFERENCE_RATE req/s; CPU per request comes from /proc. Pinning keeps
// one proxy's CPU from being shared with the client it is measured by: on a 2-core machine this
// is the only way the ratio of CPU per request is not mostly the scheduler's doing.
//
// Env: BENCH_ROUNDS (5), BENCH_DURATION_SEC (5), BENCH_CONNECTIONS (50), BENCH_REFERENCE_RATE
// (500), BENCH_PIN (1; 0 runs everything unpinned). Report: stdout and bench/results/reference.md
// (each round's figures in reference.json).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createTeamAndKey } from './lib/admin.mjs';
import {
  freePorts,
  GATEWAY_ENV,
  pinToCores,
  readCpuMs,
  runInChild,
  ServerProcess,
  stopAll,
} from './lib/procs.mjs';
import { median } from './lib/stats.mjs';
import { CHAT_BODY } from './lib/workload.mjs';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./lib/loadgen.mjs', import.meta.url));
const HOST = '127.0.0.1';
const ADMIN_KEY = 'reference-admin-key-0123456789';
const REFERENCE_KEY = 'sk-reference-0123456789';
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const durationSec = Number(process.env.BENCH_DURATION_SEC ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const rate = Number(process.env.BENCH_REFERENCE_RATE ?? 500);

const cores = os.availableParallelism();
const { pinning, onFirstCore } = pinToCores();

try {
  readFileSync(path.join(REPO_ROOT, 'dist', 'server.js'));
} catch {
  throw new Error('dist/server.js not found: run `npm run build` first.');
}
const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-reference-'));
const [mockPort, ...ports] = await freePorts(5);
const mockOrigin = `http://${HOST}:${mockPort}`;
const configPath = path.join(work, 'tollgate.yaml');
writeFileSync(
  configPath,
  [
    `server: { host: ${HOST}, port: ${ports[3]} }`,
    `admin: { key: ${ADMIN_KEY} }`,
    `dataDir: ${work}`,
    `backends: { up: { type: openai, baseUrl: "${mockOrigin}/v1", apiKey: sk-reference-upstream } }`,
    'models: { bench-model: { backend: up } }',
    '',
  ].join('\n'),
);
const env = { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'info' };
delete env.LOG_PRETTY;
delete env.LOG_REQUESTS;
const proxyEnv = (port, extra = {}) => ({
  ...env,
  ...GATEWAY_ENV,
  HOST,
  PORT: String(port),
  UPSTREAM_URL: mockOrigin,
  ...extra,
});

const targets = [
  { key: 'floor', script: ['bench/floor-proxy.mjs'], env: proxyEnv(ports[0]), port: ports[0] },
  {
    key: 'fastify',
    script: ['bench/reference-gateway.mjs'],
    env: proxyEnv(ports[1], { REFERENCE_STEPS: 'fastify', REFERENCE_KEY }),
    port: ports[1],
  },
  {
    key: 'reference',
    script: ['bench/reference-gateway.mjs'],
    env: proxyEnv(ports[2], { REFERENCE_KEY }),
    port: ports[2],
  },
  {
    key: 'tollgate',
    script: ['--max-semi-space-size=16', 'dist/server.js', '--config', configPath],
    env: proxyEnv(ports[3]),
    port: ports[3],
  },
];

const body = CHAT_BODY;

/** @type {Record<string, { max: number[], cpuAtMax: number[], cpuAtRate: number[], p50: number[], p99: number[] }>} */
const runs = Object.fromEntries(
  targets.map((t) => [t.key, { max: [], cpuAtMax: [], cpuAtRate: [], p50: [], p99: [] }]),
);
const progress = (text) => process.stderr.write(`reference: ${text}\n`);

try {
  const mock = new ServerProcess('mock upstream', process.execPath, ['bench/mock-upstream.mjs'], {
    cwd: REPO_ROOT,
    stdout: 'ignore',
    env: { ...env, HOST, PORT: String(mockPort) },
  });
  await mock.waitReady(`${mockOrigin}/healthz`, 10_000);
  for (const target of targets) {
    const [command, args] = onFirstCore(target.script);
    target.origin = `http://${HOST}:${target.port}`;
    target.process = new ServerProcess(target.key, command, args, {
      cwd: REPO_ROOT,
      stdout: 'ignore',
      env: target.env,
    });
    await target.process.waitReady(`${target.origin}/healthz`, 30_000);
  }
  const tollgate = targets[3];
  tollgate.apiKey = (await createTeamAndKey(tollgate.origin, ADMIN_KEY, { name: 'reference' }, {})).key;
  for (const target of targets) {
    target.headers = {
      'content-type': 'application/json',
      authorization: `Bearer ${target.apiKey ?? REFERENCE_KEY}`,
    };
    const answer = await request(`${target.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: target.headers,
      body,
    });
    const text = await answer.body.text();
    if (answer.statusCode !== 200 || !text.includes('"usage"'))
      throw new Error(`${target.key} answered ${answer.statusCode}: ${text.slice(0, 300)}`);
    progress(`warm-up ${target.key}`);
    // V8 moves a request's hot functions to TurboFan only after 10,000 to 25,000 requests.
    await load(target, { kind: 'max', connections, durationSec: Number(process.env.BENCH_WARMUP ?? 15) });
  }

  for (let round = 0; round < rounds; round += 1) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) {
      const max = await load(target, { kind: 'max', connections, durationSec });
      const paced = await load(target, { kind: 'paced', rate, durationSec, warmupSec: 1 });
      const r = runs[target.key];
      r.max.push(max.result.reqPerSec);
      r.cpuAtMax.push(max.cpuUs);
      r.cpuAtRate.push(paced.cpuUs);
      r.p50.push(paced.result.latencyMs.p50);
      r.p99.push(paced.result.latencyMs.p99);
      progress(
        `round ${round + 1}/${rounds} ${target.key}: ${Math.round(max.result.reqPerSec)} req/s at ${Math.round(max.cpuUs)} µs, ` +
          `${rate} req/s at ${Math.round(paced.cpuUs)} µs`,
      );
    }
  }
  const report = render();
  mkdirSync(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(REPO_ROOT, 'bench', 'results', 'reference.md'), report);
  writeFileSync(
    path.join(REPO_ROOT, 'bench', 'results', 'reference.json'),
    `${JSON.stringify({ pinning, rate, runs }, null, 1)}\n`,
  );
  process.stdout.write(report);
} finally {
  await stopAll(5_000);
  rmSync(work, { recursive: true, force: true });
}

/**
 * One load job against one target; the proxy's CPU per answered request over the whole job.
 * @param {{ origin: string, headers: Record<string, string>, process: ServerProcess, key: string }} target
 * @param {object} job
 */
async function load(target, job) {
  if (!target.process.alive) throw new Error(`${target.key} ${target.process.exitReason}`);
  const before = readCpuMs(target.process.pid);
  const result = await runInChild(
    LOADGEN,
    { ...job, origin: target.origin, path: '/v1/chat/completions', headers: target.headers, body },
    (durationSec + 60) * 1000,
  );
  const cpuMs = readCpuMs(target.process.pid) - before;
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${target.key}: ${result.non2xx} non-2xx answers and ${result.errors} errors`);
  return { result, cpuUs: (cpuMs * 1000) / Math.max(1, result.completedTotal) };
}

function render() {
  const floor = runs.floor;
  /** Each round's figure over the floor's in the same round, then the median: steadier than a ratio of medians. */
  const vsFloor = (r, field) =>
    median(r[field].map((value, round) => value / (floor[field][round] ?? Number.NaN)));
  const lines = [
    `# Reference proxies (${rounds} rounds, ${durationSec} s per run, ${pinning ? 'proxies pinned to core 0, client and mock to core 1' : 'unpinned'})`,
    '',
    `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores, Node ${process.version}. Medians of the rounds; ` +
      "the shares and ratios are medians of each round's figure over the floor's in that round.",
    '',
    `| proxy | max req/s (range) | share of the floor's | CPU per request at max | vs floor | CPU per request at ${rate} req/s | vs floor | p50 / p99 at ${rate} req/s |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [key, r] of Object.entries(runs)) {
    lines.push(
      `| ${key} | ${Math.round(median(r.max))} (${Math.round(Math.min(...r.max))}-${Math.round(Math.max(...r.max))}) | ` +
        `${Math.round(100 * vsFloor(r, 'max'))} % | ${Math.round(median(r.cpuAtMax))} µs | ${vsFloor(r, 'cpuAtMax').toFixed(2)}x | ` +
        `${Math.round(median(r.cpuAtRate))} µs | ${vsFloor(r, 'cpuAtRate').toFixed(2)}x | ${median(r.p50).toFixed(2)} / ${median(r.p99).toFixed(2)} ms |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
