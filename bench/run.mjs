// Tollgate benchmark: `npm run bench` (builds first) or `node bench/run.mjs` (uses dist/ as is).
//
// One run starts three servers, each in its own process:
//   mock upstream  bench/mock-upstream.mjs  the OpenAI-compatible backend every target ends at
//   floor proxy    bench/floor-proxy.mjs    the cheapest Node proxy hop: what any gateway costs
//   tollgate       node --max-semi-space-size=16 dist/server.js --config <generated config> (with the
//                  environment `npm start` sets: MALLOC_TRIM_THRESHOLD_=131072)
// (plus, for section 6, a throwaway redis-server and a second gateway configured to use it, and
// for section 7 two more gateways with the response cache on, one of them on another redis-server)
// and measures three targets against the same mock, alternating between them and rotating the
// order every round so drift (thermal, noisy neighbours) spreads evenly instead of favouring one:
//   direct   → mock                          the baseline (no hop)
//   floor    → floor proxy → mock            the floor
//   tollgate → gateway → mock                what we ship
// Load comes from a separate, freshly forked process per measurement (bench/lib/loadgen.mjs),
// never from a server's event loop. The report goes to stdout and bench/results/latest.md
// (raw figures in latest.json); progress goes to stderr.
//
// Settings (environment):
//   BENCH_QUICK=1                ~1 minute sanity run (shorter durations, 1 round, fewer streams)
//   BENCH_DURATION=10            seconds per throughput / fixed-rate measurement
//   BENCH_ROUNDS=3               rounds; tables show the median of the rounds
//   BENCH_WARMUP=15              seconds of closed-loop warm-up per target before round 1 (V8
//                                moves a request's hot functions to TurboFan only after 10,000
//                                to 25,000 requests: bench/README.md)
//   BENCH_RATE_WARMUP=1          seconds at the target rate before each fixed-rate measurement
//   BENCH_CONNECTIONS=50         connections for the max-throughput measurement
//   BENCH_RATES=500,2000         fixed request rates (req/s) for the latency measurements
//   BENCH_RATE_CLIENT=paced      `paced` (open loop, evenly spaced) or `autocannon` (overallRate;
//                                it fires each connection's per-second quota back to back at every
//                                1 s tick, so its "rate" is really short bursts; kept to compare)
//   BENCH_STREAM_CHUNKS=20       chunks per streamed completion (mock)
//   BENCH_STREAM_DELAY_MS=5      delay between chunks (mock); the first chunk is sent at once
//   BENCH_STREAMS_SEQ=100        sequential streams per target per round (percentiles pool rounds)
//   BENCH_STREAMS_CONCURRENT=200 streams per target per round run BENCH_STREAM_CONCURRENCY at a time
//   BENCH_STREAM_CONCURRENCY=20
//   BENCH_LOG_LEVEL=info         LOG_LEVEL given to the gateway (an ambient LOG_LEVEL is ignored so
//                                runs stay comparable)
//   BENCH_LOG_REQUESTS=all       LOG_REQUESTS given to every gateway: which requests get a request
//                                line (all | errors | none; an ambient LOG_REQUESTS is ignored too)
//   BENCH_GATEWAY_LOG=<file>     where the gateway's stdout goes; default: a temp file, deleted at
//                                the end after counting its lines (`/dev/null` to discard)
//   BENCH_GATEWAY_CMD="..."      run this instead of `node --max-semi-space-size=16 dist/server.js --config {config}`; split
//                                on spaces, `{config}` replaced by the config path, `node` by this
//                                Node. The process also gets PORT, HOST, LOG_LEVEL, TOLLGATE_CONFIG
//                                and UPSTREAM_URL (the mock's origin). To test the harness without
//                                a gateway: BENCH_GATEWAY_CMD="node bench/floor-proxy.mjs"
//   BENCH_GATEWAY_CONFIG=<file>  use this config instead of the generated one (it can point at the
//                                mock with ${BENCH_UPSTREAM_URL}/v1, e.g. once keys are required)
//   BENCH_API_KEY=sk-bench       bearer token the clients send
//   Auth + quota + usage on Redis (section 6, after the rounds above; its own redis-server and a
//   second gateway, started for it and stopped when it ends):
//   BENCH_QUOTA=1                0 skips the section (it is also skipped with BENCH_GATEWAY_CMD or
//                                BENCH_GATEWAY_CONFIG: it generates its own config)
//   BENCH_QUOTA_RATE=1000        fixed rate (req/s, paced client) for floor, tollgate and
//                                tollgate+redis; BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP and
//                                BENCH_RATE_WARMUP apply as above
//   BENCH_QUOTA_IDLE=5           seconds the gateway's background Redis traffic is counted with no
//                                load (2 with BENCH_QUICK), subtracted from the commands per request
//   BENCH_QUOTA_SAMPLE=50        sequential requests watched with MONITOR after the timed runs, to
//                                split the commands into those the gateway sends and those its Lua
//                                scripts run (INFO counts both)
//   BENCH_REDIS_SERVER=redis-server  the redis-server binary (started on a free port, 127.0.0.1,
//                                no persistence; never the system Redis)
//   Cache hits (section 7, after section 6; two gateways with `cache: { enabled: true }`, one on
//   the embedded store and one on its own throwaway redis-server, all stopped when it ends):
//   BENCH_CACHE=1                0 skips the section (also skipped with BENCH_GATEWAY_CMD or
//                                BENCH_GATEWAY_CONFIG: it generates its own configs)
//   BENCH_CACHE_RATE=1000        fixed rate (req/s, paced client) for the hit latency of both
//                                stores and of the floor; the max hit throughput (closed loop,
//                                BENCH_CONNECTIONS) is compared with the floor's. BENCH_DURATION,
//                                BENCH_ROUNDS, BENCH_WARMUP and BENCH_RATE_WARMUP apply as above
//   BENCH_CACHE_SAMPLE=50        sequential requests per store after the timed runs whose
//                                x-tollgate-cache header is counted (all must say HIT)
//   A model on three deployments vs one (section 8, after section 7; a gateway whose model has
//   three deployments on the mock, stopped when it ends):
//   BENCH_ROUTING=1              0 skips the section (also skipped with BENCH_GATEWAY_CMD or
//                                BENCH_GATEWAY_CONFIG: it generates its own config)
//   BENCH_ROUTING_RATE=500       fixed rate (req/s, paced client) of the CPU-per-request runs;
//                                sequential streams (BENCH_STREAMS_SEQ) give time to first chunk.
//                                BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP and BENCH_RATE_WARMUP apply
//   BENCH_ONLY=routing           run section 8 alone (no sections 1-7): the report goes to
//                                bench/results/routing.md; a quick check that the section works
//   An in-process model (section 9, after section 8; bench/llama-cpp-section.mjs): a tiny GGUF
//   written to the temp folder, node-llama-cpp called directly vs a gateway with a llama-cpp
//   backend on it, then a gateway whose model has BENCH_LLAMA_SLOTS slots under bursts:
//   BENCH_LLAMA=1                0 skips the section (also skipped with BENCH_GATEWAY_CMD or
//                                BENCH_GATEWAY_CONFIG, and when node-llama-cpp cannot load)
//   BENCH_LLAMA_THREADS=1        llama.cpp threads, the same on both sides (more threads than
//                                the cores left free make llama.cpp spin: keep it low)
//   BENCH_LLAMA_ROUNDS=5         rounds of section 9 (1 with BENCH_QUICK)
//   BENCH_LLAMA_REQUESTS=100     timed requests per path and length per round (60 with BENCH_QUICK)
//   BENCH_LLAMA_WARMUP=20        untimed requests per path and length before each measurement
//   BENCH_LLAMA_SHORT=16         max_tokens of the short requests (overhead per request)
//   BENCH_LLAMA_LONG=64          max_tokens of the long ones (their growth gives the per-token cost)
//   BENCH_LLAMA_SLOTS=2          slots of the queueing gateway's model; bursts send twice as many
//   BENCH_LLAMA_BURSTS=30        bursts per queue length (10 with BENCH_QUICK)
//   BENCH_ONLY=llama-cpp         run section 9 alone (no mock, no sections 1-8): the report goes to
//                                bench/results/llama-cpp.md (raw figures in llama-cpp.json)
//   Noise guard (the machine is shared; see bench/lib/noise.mjs):
//   BENCH_NOISE_LIMIT=0.2        cores other processes may use during a measurement
//   BENCH_QUIET_WAIT=20          max seconds to wait for a quiet machine before each measurement
//   BENCH_NOISY_RETRIES=1        repeats of a measurement that was noisy anyway
//   BENCH_NOISE_BUDGET=120       max seconds the guard may add to the whole run (0: never wait)
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createTeamAndKey as createTeamAndKeyAs } from './lib/admin.mjs';
import { llamaCppSection } from './lib/llama-cpp-report.mjs';
import { NoiseGuard } from './lib/noise.mjs';
import {
  freePorts,
  GATEWAY_ENV,
  killAllNow,
  readCpuMs,
  readMemory,
  runInChild,
  ServerProcess,
  stopAll,
} from './lib/procs.mjs';
import {
  monitorRedis,
  readRedisCounters,
  redisCommand,
  redisDelta,
  startRedis,
  summarizeMonitor,
} from './lib/redis.mjs';
import { renderReport } from './lib/report.mjs';
import { routingSection, routingVerdicts } from './lib/routing-report.mjs';
import { median } from './lib/stats.mjs';
import { CHAT_BODY, MODEL, QUOTA_KEY, QUOTA_TEAM } from './lib/workload.mjs';
import { readLlamaCppSettings, runLlamaCppSection } from './llama-cpp-section.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const LOADGEN = path.join(BENCH_DIR, 'lib', 'loadgen.mjs');
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const HOST = '127.0.0.1';
const CHAT_PATH = '/v1/chat/completions';

/** @typedef {'direct' | 'floor' | 'tollgate'} TargetKey */
/**
 * @typedef {object} Target
 * @property {TargetKey} key
 * @property {string} label
 * @property {string} origin
 * @property {ServerProcess | null} proxy the process in front of the mock, null for direct
 */
/** @typedef {import('./lib/loadgen.mjs').RequestRunResult} RequestRunResult */
/** @typedef {import('./lib/loadgen.mjs').StreamRunResult} StreamRunResult */
/**
 * @typedef {object} ServerCpu
 * @property {number} mockMs CPU the mock used during the job
 * @property {number} proxyMs CPU the target's proxy used during the job (NaN for direct)
 * @property {number} wallMs
 */
/**
 * @typedef {object} MeasurementContext
 * @property {number} round 1-based
 * @property {ServerCpu} serverCpu
 * @property {number} foreignCores CPU other processes on the machine used meanwhile (noise)
 */
/** @typedef {RequestRunResult & MeasurementContext} MeasuredRequests */
/** @typedef {StreamRunResult & MeasurementContext} MeasuredStreams */
/**
 * @typedef {object} MemoryTimeline
 * @property {import('./lib/procs.mjs').MemoryReading | null} atBoot
 * @property {import('./lib/procs.mjs').MemoryReading | null} afterWarmup
 * @property {number[]} underLoadKb RSS samples while this process was the target
 * @property {import('./lib/procs.mjs').MemoryReading | null} afterRun
 */

/**
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @returns {number}
 */
function envNumber(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw}: expected a number >= ${min}`);
  return value;
}

function readSettings() {
  const quick = process.env.BENCH_QUICK === '1';
  const rates = (process.env.BENCH_RATES ?? '500,2000')
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number);
  if (rates.some((rate) => !Number.isFinite(rate) || rate < 1)) {
    throw new Error(`BENCH_RATES=${process.env.BENCH_RATES}: expected comma-separated numbers >= 1`);
  }
  if (
    process.env.BENCH_ONLY !== undefined &&
    process.env.BENCH_ONLY !== 'routing' &&
    process.env.BENCH_ONLY !== 'llama-cpp'
  ) {
    throw new Error(
      `BENCH_ONLY=${process.env.BENCH_ONLY}: expected routing or llama-cpp (the sections that run alone)`,
    );
  }
  const rateClient = process.env.BENCH_RATE_CLIENT ?? 'paced';
  if (rateClient !== 'paced' && rateClient !== 'autocannon') {
    throw new Error(`BENCH_RATE_CLIENT=${rateClient}: expected paced or autocannon`);
  }
  return {
    quick,
    durationSec: envNumber('BENCH_DURATION', quick ? 3 : 10, 1),
    rounds: Math.round(envNumber('BENCH_ROUNDS', quick ? 1 : 3, 1)),
    warmupSec: envNumber('BENCH_WARMUP', quick ? 1 : 15, 0),
    rateWarmupSec: envNumber('BENCH_RATE_WARMUP', quick ? 0.5 : 1, 0),
    connections: Math.round(envNumber('BENCH_CONNECTIONS', 50, 1)),
    rates,
    rateClient: /** @type {'paced' | 'autocannon'} */ (rateClient),
    streamChunks: Math.round(envNumber('BENCH_STREAM_CHUNKS', 20, 2)),
    streamDelayMs: envNumber('BENCH_STREAM_DELAY_MS', 5, 0),
    streamsSequential: Math.round(envNumber('BENCH_STREAMS_SEQ', quick ? 30 : 100, 1)),
    streamsConcurrent: Math.round(envNumber('BENCH_STREAMS_CONCURRENT', quick ? 60 : 200, 0)),
    streamConcurrency: Math.round(envNumber('BENCH_STREAM_CONCURRENCY', 20, 1)),
    logLevel: process.env.BENCH_LOG_LEVEL ?? 'info',
    logRequests: process.env.BENCH_LOG_REQUESTS ?? 'all',
    gatewayLog: process.env.BENCH_GATEWAY_LOG ?? null,
    gatewayCommand: process.env.BENCH_GATEWAY_CMD ?? null,
    gatewayConfig: process.env.BENCH_GATEWAY_CONFIG ?? null,
    apiKey: process.env.BENCH_API_KEY ?? 'sk-bench',
    quota: {
      enabled: process.env.BENCH_QUOTA !== '0',
      rate: envNumber('BENCH_QUOTA_RATE', 1000, 1),
      idleSec: envNumber('BENCH_QUOTA_IDLE', quick ? 2 : 5, 1),
      sampleRequests: Math.round(envNumber('BENCH_QUOTA_SAMPLE', 50, 1)),
    },
    cache: {
      enabled: process.env.BENCH_CACHE !== '0',
      rate: envNumber('BENCH_CACHE_RATE', 1000, 1),
      sampleRequests: Math.round(envNumber('BENCH_CACHE_SAMPLE', 50, 1)),
    },
    routing: {
      enabled: process.env.BENCH_ROUTING !== '0',
      rate: envNumber('BENCH_ROUTING_RATE', 500, 1),
      only: process.env.BENCH_ONLY === 'routing',
    },
    llamaCpp: readLlamaCppSettings(envNumber, quick),
    noise: {
      limitCores: envNumber('BENCH_NOISE_LIMIT', 0.2, 0),
      quietWaitMs: envNumber('BENCH_QUIET_WAIT', quick ? 10 : 20, 0) * 1000,
      retries: Math.round(envNumber('BENCH_NOISY_RETRIES', 1, 0)),
      budgetMs: envNumber('BENCH_NOISE_BUDGET', quick ? 30 : 120, 0) * 1000,
    },
  };
}
/** @typedef {ReturnType<typeof readSettings>} Settings */

/** @param {string} message */
const progress = (message) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

/**
 * @param {string} command
 * @param {readonly string[]} args
 * @returns {string | null} trimmed stdout, null when the command fails
 */
function tryCommand(command, args) {
  try {
    return execFileSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch {
    return null;
  }
}

function describeMachine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: keep what os.cpus() said.
  }
  const commit = tryCommand('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = tryCommand('git', ['status', '--porcelain']);
  return {
    cpuModel,
    logicalCores: os.availableParallelism(),
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    commit: commit === null ? 'no commit yet' : `${commit}${dirty ? ' (working tree has changes)' : ''}`,
    loadAverageAtStart: os.loadavg(),
  };
}
/** @typedef {ReturnType<typeof describeMachine>} Machine */

/**
 * The gateway config the run generates: one OpenAI-compatible backend (the mock) and one model.
 * Written as YAML, the gateway's primary format. The log level is left to the LOG_LEVEL env
 * override, which is both the documented way to set it per run and independent of where the
 * config schema keeps it.
 * @param {string} upstreamOrigin
 * @param {number} port
 * @param {string} dataDir
 * @param {string | null} [redisUrl] sections 6 and 7: keep state in this Redis
 * @param {{ prices?: boolean, cache?: boolean, deployments?: number }} [options] prices: price the
 *   mock model when on Redis (section 6); cache: turn the response cache on (section 7);
 *   deployments: more than one puts the model on that many backends, all the mock (section 8)
 */
function gatewayConfigYaml(
  upstreamOrigin,
  port,
  dataDir,
  redisUrl = null,
  { prices = true, cache = false, deployments = 1 } = {},
) {
  const several = Array.from({ length: deployments }, (_, i) => `upstream${i + 1}`);
  return [
    '# Generated by bench/run.mjs for one benchmark run.',
    // Section 6: teams, keys, quota counters and usage in Redis; a price for the mock's model so
    // the bench key's USD budget has something to count.
    ...(redisUrl === null ? [] : [`redis: { url: "${redisUrl}" }`]),
    ...(redisUrl === null || !prices ? [] : [`quota: { prices: { ${MODEL}: { input: 1, output: 2 } } }`]),
    // Section 7: the response cache on for every model (deterministic requests only).
    ...(cache ? ['cache: { enabled: true }'] : []),
    `server: { host: ${HOST}, port: ${port} }`,
    'backends:',
    ...(deployments > 1
      ? several.map(
          (name) =>
            `  ${name}: { type: openai, baseUrl: "${upstreamOrigin}/v1", apiKey: "sk-bench-upstream" }`,
        )
      : [`  upstream: { type: openai, baseUrl: "${upstreamOrigin}/v1", apiKey: "sk-bench-upstream" }`]),
    'models:',
    ...(deployments > 1
      ? [
          // Section 8: weighted over three, with attempts and a circuit each: the whole routing path.
          `  ${MODEL}:`,
          '    deployments:',
          ...several.map((name) => `      - { backend: ${name}, model: ${MODEL} }`),
          '    retry: { attempts: 3 }',
          '    circuit: { failures: 5 }',
        ]
      : [`  ${MODEL}: { backend: upstream, model: ${MODEL} }`]),
    // Keys on (the default): the run creates a team and a key through the admin API and sends it,
    // so the figures include authentication as users run it.
    `admin: { key: "${BENCH_ADMIN_KEY}" }`,
    `dataDir: "${dataDir}"`,
    '',
  ].join('\n');
}

const BENCH_ADMIN_KEY = 'bench-admin-key-0123456789';

/** What servers inherit: this environment minus the settings that would change what is measured. */
function serverBaseEnv() {
  const { LOG_LEVEL: _level, LOG_PRETTY: _pretty, LOG_REQUESTS: _lines, ...rest } = process.env;
  return rest;
}

/**
 * Creates a team and a key on the gateway and returns the key, unless BENCH_API_KEY names one.
 * @param {string} origin
 * @param {Settings} settings
 */
async function benchKey(origin, settings) {
  if (process.env.BENCH_API_KEY) return settings.apiKey;
  return (await createTeamAndKey(origin, { name: 'bench' }, {})).key;
}

/**
 * A team and a key in a gateway of this run (they all have BENCH_ADMIN_KEY).
 * @param {string} origin
 * @param {object} teamBody
 * @param {object} keyBody without team_id
 */
const createTeamAndKey = (origin, teamBody, keyBody) =>
  createTeamAndKeyAs(origin, BENCH_ADMIN_KEY, teamBody, keyBody);

/**
 * Resolves the gateway command: the built server by default, or BENCH_GATEWAY_CMD.
 * @param {Settings} settings
 * @param {string} configPath
 * @returns {{ command: string, args: string[], overridden: boolean }}
 */
function gatewayCommand(settings, configPath) {
  const template =
    settings.gatewayCommand ?? 'node --max-semi-space-size=16 dist/server.js --config {config}';
  const [first, ...rest] = template
    .split(/\s+/)
    .filter((part) => part !== '')
    .map((part) => part.replaceAll('{config}', configPath));
  if (first === undefined) throw new Error('BENCH_GATEWAY_CMD is empty');
  // The same Node that runs the benchmark, whatever PATH says.
  const command = first === 'node' ? process.execPath : first;
  return { command, args: rest, overridden: settings.gatewayCommand !== null };
}

/**
 * @typedef {object} SseSummary
 * @property {number} status
 * @property {string} contentType
 * @property {number} events
 * @property {boolean} usageChunk
 * @property {boolean} done
 */

/**
 * @param {string} origin
 * @param {object} body
 * @param {string} apiKey
 */
async function postChat(origin, body, apiKey) {
  const response = await request(origin + CHAT_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(body),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await response.body.text();
  const contentType = String(response.headers['content-type'] ?? '');
  return { status: response.statusCode, contentType, text };
}

/** @param {{ status: number, contentType: string, text: string }} response @returns {SseSummary} */
function summarizeSse(response) {
  const events = response.text.split('\n\n').filter((event) => event.startsWith('data:'));
  return {
    status: response.status,
    contentType: response.contentType,
    events: events.length,
    usageChunk: events.some((event) => event.includes('"choices":[]')),
    done: events.at(-1) === 'data: [DONE]',
  };
}

/**
 * One request of each kind before any load: a target that answers 404 or breaks streams would
 * otherwise produce impressive numbers for the wrong thing.
 * @param {Target} target
 * @param {Settings} settings
 * @returns {Promise<string[]>} notes for the report
 */
async function sanityCheck(target, settings) {
  const messages = [{ role: 'user', content: 'Say hello' }];
  const plain = await postChat(target.origin, { model: MODEL, messages }, settings.apiKey);
  if (plain.status !== 200) {
    throw new Error(
      `${target.label}: POST ${CHAT_PATH} answered ${plain.status}: ${plain.text.slice(0, 500)}`,
    );
  }
  /** @type {{ object?: unknown, usage?: unknown }} */
  const completion = JSON.parse(plain.text);
  const notes = [];
  if (completion.object !== 'chat.completion' || typeof completion.usage !== 'object') {
    notes.push(`${target.label}: non-stream body is not a chat.completion with usage`);
  }
  const stream = summarizeSse(
    await postChat(target.origin, { model: MODEL, messages, stream: true }, settings.apiKey),
  );
  const withUsage = summarizeSse(
    await postChat(
      target.origin,
      { model: MODEL, messages, stream: true, stream_options: { include_usage: true } },
      settings.apiKey,
    ),
  );
  const expectedEvents = settings.streamChunks + 1; // chunks + [DONE]
  if (stream.status !== 200 || !stream.contentType.startsWith('text/event-stream')) {
    throw new Error(`${target.label}: stream answered ${stream.status} ${stream.contentType}`);
  }
  if (!stream.done) notes.push(`${target.label}: stream did not end with data: [DONE]`);
  if (stream.usageChunk)
    notes.push(`${target.label}: stream carried a usage chunk the client did not ask for`);
  if (stream.events !== expectedEvents) {
    notes.push(`${target.label}: stream had ${stream.events} data events, expected ${expectedEvents}`);
  }
  if (!withUsage.usageChunk) notes.push(`${target.label}: include_usage stream carried no usage chunk`);
  return notes;
}

/**
 * CPU used by the servers while `work` runs: the mock's and the target's proxy's.
 * @template T
 * @param {Target} target
 * @param {ServerProcess} mock
 * @param {() => Promise<T>} work
 * @returns {Promise<{ result: T, serverCpu: ServerCpu }>}
 */
async function withServerCpu(target, mock, work) {
  const startedAt = performance.now();
  const mockBefore = readCpuMs(mock.pid);
  const proxyBefore = target.proxy === null ? Number.NaN : readCpuMs(target.proxy.pid);
  const result = await work();
  const serverCpu = {
    mockMs: readCpuMs(mock.pid) - mockBefore,
    proxyMs: target.proxy === null ? Number.NaN : readCpuMs(target.proxy.pid) - proxyBefore,
    wallMs: performance.now() - startedAt,
  };
  return { result, serverCpu };
}

/**
 * Samples the gateway's RSS every 250 ms while the gateway is under load.
 * @param {number} pid
 */
function memorySampler(pid) {
  /** @type {number[]} */
  const samples = [];
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  return {
    samples,
    start() {
      timer = setInterval(() => {
        const reading = readMemory(pid);
        if (reading !== null) samples.push(reading.rssKb);
      }, 250);
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/**
 * Counts the lines of the gateway's log file without loading it whole.
 * @param {string} file
 * @returns {Promise<{ lines: number, bytes: number } | null>}
 */
async function countLogLines(file) {
  try {
    const { size } = statSync(file);
    let lines = 0;
    for await (const chunk of createReadStream(file)) {
      const bytes = /** @type {Buffer} */ (chunk);
      for (let index = bytes.indexOf(10); index !== -1; index = bytes.indexOf(10, index + 1)) lines += 1;
    }
    return { lines, bytes: size };
  } catch {
    return null;
  }
}

/**
 * @param {Target[]} targets
 * @param {number} round
 * @returns {Target[]} the targets rotated by `round`, so no target always goes first
 */
const rotate = (targets, round) =>
  targets
    .map((_, index) => targets[(index + round) % targets.length])
    .filter(/** @returns {target is Target} */ (target) => target !== undefined);

/** @type {Array<() => void>} */
const cleanupTasks = [];

async function main() {
  const settings = readSettings();
  const startedAt = new Date();
  const machine = describeMachine();
  const mockScript = path.join(BENCH_DIR, 'mock-upstream.mjs');
  const floorScript = path.join(BENCH_DIR, 'floor-proxy.mjs');
  const tempDir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-'));
  cleanupTasks.push(() => rmSync(tempDir, { recursive: true, force: true }));
  if (settings.llamaCpp.only) return runLlamaCppAlone(settings, tempDir);

  const [mockPort, floorPort, gatewayPort] = await freePorts(3);
  const mockOrigin = `http://${HOST}:${mockPort}`;
  const floorOrigin = `http://${HOST}:${floorPort}`;
  const gatewayOrigin = `http://${HOST}:${gatewayPort}`;

  const configPath = settings.gatewayConfig ?? path.join(tempDir, 'tollgate.bench.yaml');
  if (settings.gatewayConfig === null) {
    writeFileSync(configPath, gatewayConfigYaml(mockOrigin, Number(gatewayPort), path.join(tempDir, 'data')));
  }
  const gateway = gatewayCommand(settings, configPath);
  if (!gateway.overridden && !statSyncSafe(path.join(REPO_ROOT, 'dist', 'server.js'))) {
    throw new Error('dist/server.js not found: run `npm run bench` (it builds first) or `npm run build`.');
  }
  const gatewayLogPath = settings.gatewayLog ?? path.join(tempDir, 'gateway.log');
  const gatewayStdout = openSync(gatewayLogPath, 'w');

  const baseEnv = serverBaseEnv();
  const mock = new ServerProcess('mock upstream', process.execPath, [mockScript], {
    cwd: REPO_ROOT,
    stdout: 'ignore',
    env: {
      ...baseEnv,
      HOST,
      PORT: String(mockPort),
      MOCK_STREAM_CHUNKS: String(settings.streamChunks),
      MOCK_CHUNK_DELAY_MS: String(settings.streamDelayMs),
    },
  });
  const floor = new ServerProcess('floor proxy', process.execPath, [floorScript], {
    cwd: REPO_ROOT,
    stdout: 'ignore',
    env: { ...baseEnv, HOST, PORT: String(floorPort), UPSTREAM_URL: mockOrigin },
  });
  const tollgate = new ServerProcess('tollgate', gateway.command, gateway.args, {
    cwd: REPO_ROOT,
    stdout: gatewayStdout,
    stdoutFile: gatewayLogPath,
    env: {
      ...baseEnv,
      ...GATEWAY_ENV,
      HOST,
      PORT: String(gatewayPort),
      LOG_LEVEL: settings.logLevel,
      LOG_REQUESTS: settings.logRequests,
      TOLLGATE_CONFIG: configPath,
      UPSTREAM_URL: mockOrigin,
      BENCH_UPSTREAM_URL: mockOrigin,
    },
  });
  closeSync(gatewayStdout); // the child has its own copy of the descriptor
  progress(`starting servers; gateway: ${tollgate.commandLine}`);
  await Promise.all([
    mock.waitReady(`${mockOrigin}/healthz`, 10_000),
    floor.waitReady(`${floorOrigin}/healthz`, 10_000),
    tollgate.waitReady(`${gatewayOrigin}/healthz`, 30_000),
  ]);

  /** @type {Target[]} */
  const targets = [
    { key: 'direct', label: 'direct', origin: mockOrigin, proxy: null },
    { key: 'floor', label: 'floor', origin: floorOrigin, proxy: floor },
    {
      key: 'tollgate',
      label: gateway.overridden ? 'tollgate*' : 'tollgate',
      origin: gatewayOrigin,
      proxy: tollgate,
    },
  ];
  if (settings.gatewayConfig === null && !gateway.overridden)
    settings.apiKey = await benchKey(gatewayOrigin, settings);
  /** @type {string[]} */
  const sanityNotes = [];
  for (const target of targets) sanityNotes.push(...(await sanityCheck(target, settings)));
  for (const note of sanityNotes) progress(`sanity: ${note}`);

  await sleep(1000);
  const memoryAtBoot = { floor: readMemory(floor.pid), tollgate: readMemory(tollgate.pid) };

  const headers = { 'content-type': 'application/json', authorization: `Bearer ${settings.apiKey}` };
  const chatBody = CHAT_BODY;
  const streamBody = JSON.stringify({ ...JSON.parse(chatBody), stream: true });
  const streamMs = settings.streamChunks * (settings.streamDelayMs + 1) + 50;

  /** @param {Target} target */
  const requestSpec = (target) => ({ origin: target.origin, path: CHAT_PATH, headers, body: chatBody });
  const assertServersAlive = () => {
    for (const server of [mock, floor, tollgate]) {
      if (!server.alive)
        throw new Error(`${server.name} ${server.exitReason} during the run.\n${server.describeTail()}`);
    }
  };
  const samplers = { floor: memorySampler(floor.pid), tollgate: memorySampler(tollgate.pid) };
  /** @type {number[]} servers started later (section 6), whose CPU is ours too, not noise */
  const extraPids = [];
  const guard = new NoiseGuard(settings.noise, () => [mock.pid, floor.pid, tollgate.pid, ...extraPids]);

  /**
   * Runs one load job against a target under the noise guard, recording the servers' CPU and
   * the proxy's RSS.
   * @template T
   * @param {string} label
   * @param {Target} target
   * @param {object} job
   * @param {number} timeoutMs
   * @returns {Promise<{ result: T, serverCpu: ServerCpu, foreignCores: number }>}
   */
  const measure = (label, target, job, timeoutMs) =>
    guard.run(label, async () => {
      const sampler = target.key === 'direct' ? null : samplers[target.key];
      sampler?.start();
      /** @type {{ result: T, serverCpu: ServerCpu }} */
      let measured;
      try {
        measured = await withServerCpu(target, mock, () => runInChild(LOADGEN, job, timeoutMs));
      } catch (error) {
        assertServersAlive(); // a dead server explains a failed job better than the job's error
        throw error;
      } finally {
        sampler?.stop();
      }
      assertServersAlive();
      const { processCpuMs } = /** @type {{ processCpuMs: number }} */ (measured.result);
      return { ...measured, childCpuMs: processCpuMs };
    });

  const routingInput = () => ({
    settings,
    tempDir,
    mockOrigin,
    baseEnv,
    guard,
    extraPids,
    mock,
    tollgateTarget: /** @type {Target} */ (targets[2]),
    chatBody,
    streamBody,
    streamMs,
    assertServersAlive,
  });
  if (settings.routing.only) {
    if (gateway.overridden || settings.gatewayConfig !== null)
      throw new Error('BENCH_ONLY=routing needs the generated config and dist/server.js');
    const routing = await runRoutingSection(routingInput());
    const verdicts = routingVerdicts(routing);
    const report = [
      '# Tollgate benchmark: section 8 alone (BENCH_ONLY=routing)',
      '',
      '| target | threshold | measured | result |',
      '| --- | --- | --- | --- |',
      ...verdicts.map((v) => `| ${v.name} | ${v.threshold} | ${v.measured} | **${v.result}** |`),
      '',
      routingSection(routing),
      ...(guard.events.length > 0 ? ['Noise:', '', ...guard.events.map((event) => `- ${event}`), ''] : []),
    ].join('\n');
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(path.join(RESULTS_DIR, 'routing.md'), report);
    process.stdout.write(report);
    return;
  }

  // Warm-up: JIT, connection pools and lazily built routes, for every target, before round 1.
  if (settings.warmupSec > 0) {
    for (const target of targets) {
      progress(`warm-up ${target.label} (${settings.warmupSec} s + a few streams)`);
      const job = {
        kind: 'max',
        ...requestSpec(target),
        connections: settings.connections,
        durationSec: settings.warmupSec,
      };
      await measure(`warm-up ${target.label}`, target, job, (settings.warmupSec + 60) * 1000);
      const streams = {
        kind: 'streams',
        ...requestSpec(target),
        body: streamBody,
        sequential: 10,
        concurrent: 40,
        concurrency: settings.streamConcurrency,
      };
      await measure(`warm-up streams ${target.label}`, target, streams, 120_000);
    }
  }
  // Warm-up is not "under load" in the report.
  samplers.floor.samples.length = 0;
  samplers.tollgate.samples.length = 0;
  await sleep(1000);
  const memoryAfterWarmup = { floor: readMemory(floor.pid), tollgate: readMemory(tollgate.pid) };

  /** @type {Record<TargetKey, MeasuredRequests[]>} */
  const maxRuns = { direct: [], floor: [], tollgate: [] };
  /** @type {Array<{ rate: number, runs: Record<TargetKey, MeasuredRequests[]> }>} */
  const rateRuns = settings.rates.map((rate) => ({ rate, runs: { direct: [], floor: [], tollgate: [] } }));
  /** @type {Record<TargetKey, MeasuredStreams[]>} */
  const streamRuns = { direct: [], floor: [], tollgate: [] };

  for (let round = 0; round < settings.rounds; round += 1) {
    const order = rotate(targets, round);
    const tag = `round ${round + 1}/${settings.rounds}`;
    for (const target of order) {
      const job = {
        kind: 'max',
        ...requestSpec(target),
        connections: settings.connections,
        durationSec: settings.durationSec,
      };
      /** @type {{ result: RequestRunResult, serverCpu: ServerCpu, foreignCores: number }} */
      const { result, serverCpu, foreignCores } = await measure(
        `${tag} max ${target.label}`,
        target,
        job,
        (settings.durationSec + 60) * 1000,
      );
      maxRuns[target.key].push({ ...result, round: round + 1, serverCpu, foreignCores });
      progress(
        `${tag} max ${target.label}: ${Math.round(result.reqPerSec)} req/s, p99 ${result.latencyMs.p99.toFixed(2)} ms`,
      );
    }
    for (const entry of rateRuns) {
      for (const target of order) {
        const job =
          settings.rateClient === 'paced'
            ? {
                kind: 'paced',
                ...requestSpec(target),
                rate: entry.rate,
                durationSec: settings.durationSec,
                warmupSec: settings.rateWarmupSec,
              }
            : {
                kind: 'autocannon-rate',
                ...requestSpec(target),
                rate: entry.rate,
                connections: settings.connections,
                durationSec: settings.durationSec,
              };
        /** @type {{ result: RequestRunResult, serverCpu: ServerCpu, foreignCores: number }} */
        const { result, serverCpu, foreignCores } = await measure(
          `${tag} ${entry.rate} req/s ${target.label}`,
          target,
          job,
          (settings.durationSec + settings.rateWarmupSec + 60) * 1000,
        );
        entry.runs[target.key].push({ ...result, round: round + 1, serverCpu, foreignCores });
        progress(
          `${tag} ${entry.rate} req/s ${target.label}: p50 ${result.latencyMs.p50.toFixed(3)} ms, p99 ${result.latencyMs.p99.toFixed(3)} ms`,
        );
      }
    }
    for (const target of order) {
      const job = {
        kind: 'streams',
        ...requestSpec(target),
        body: streamBody,
        sequential: settings.streamsSequential,
        concurrent: settings.streamsConcurrent,
        concurrency: settings.streamConcurrency,
      };
      const expectedMs =
        (settings.streamsSequential + settings.streamsConcurrent / settings.streamConcurrency + 4) * streamMs;
      /** @type {{ result: StreamRunResult, serverCpu: ServerCpu, foreignCores: number }} */
      const { result, serverCpu, foreignCores } = await measure(
        `${tag} streams ${target.label}`,
        target,
        job,
        expectedMs * 3 + 60_000,
      );
      streamRuns[target.key].push({ ...result, round: round + 1, serverCpu, foreignCores });
      progress(`${tag} streams ${target.label}: TTFC p50 ${median(result.sequential.ttfcMs).toFixed(3)} ms`);
    }
  }

  await sleep(2000);
  /** @type {Record<'floor' | 'tollgate', MemoryTimeline>} */
  const memory = {
    floor: {
      atBoot: memoryAtBoot.floor,
      afterWarmup: memoryAfterWarmup.floor,
      underLoadKb: samplers.floor.samples,
      afterRun: readMemory(floor.pid),
    },
    tollgate: {
      atBoot: memoryAtBoot.tollgate,
      afterWarmup: memoryAfterWarmup.tollgate,
      underLoadKb: samplers.tollgate.samples,
      afterRun: readMemory(tollgate.pid),
    },
  };

  /**
   * Sections 6 and 7 start their own gateways from dist/server.js with generated configs, so they
   * skip when told to, or when the run measures another command or config; a failure is reported
   * in the section instead of failing the run (unless a server of sections 1-5 died).
   * @template T
   * @param {{ number: number, enabled: boolean, disabledBy: string, configBlock: string, run: () => Promise<T> }} section
   * @returns {Promise<T | { skipped: string }>}
   */
  const optionalSection = async (section) => {
    if (!section.enabled) return { skipped: `${section.disabledBy}=0` };
    if (gateway.overridden) return { skipped: 'BENCH_GATEWAY_CMD is set (the section runs dist/server.js)' };
    if (settings.gatewayConfig !== null)
      return {
        skipped: `BENCH_GATEWAY_CONFIG is set (the section generates its own config with ${section.configBlock})`,
      };
    return section.run().catch((error) => {
      assertServersAlive();
      const message = error instanceof Error ? error.message : String(error);
      progress(`section ${section.number} failed: ${message}`);
      return { skipped: `failed: ${message}` };
    });
  };
  const sectionInput = {
    settings,
    tempDir,
    mockOrigin,
    baseEnv,
    guard,
    extraPids,
    mock,
    floorTarget: /** @type {Target} */ (targets[1]),
    chatBody,
    assertServersAlive,
  };

  /** @type {QuotaSection} */
  const quota = await optionalSection({
    number: 6,
    enabled: settings.quota.enabled,
    disabledBy: 'BENCH_QUOTA',
    configBlock: 'a redis block',
    run: () => runQuotaSection({ ...sectionInput, tollgateTarget: /** @type {Target} */ (targets[2]) }),
  });

  /** @type {CacheSection} */
  const cache = await optionalSection({
    number: 7,
    enabled: settings.cache.enabled,
    disabledBy: 'BENCH_CACHE',
    configBlock: 'cache blocks',
    run: () => runCacheSection(sectionInput),
  });

  /** @type {import('./lib/routing-report.mjs').RoutingSection} */
  const routing = await optionalSection({
    number: 8,
    enabled: settings.routing.enabled,
    disabledBy: 'BENCH_ROUTING',
    configBlock: 'a model on three deployments',
    run: () => runRoutingSection(routingInput()),
  });

  /** @type {import('./llama-cpp-section.mjs').LlamaCppSection} */
  const llamaCpp = await optionalSection({
    number: 9,
    enabled: settings.llamaCpp.enabled,
    disabledBy: 'BENCH_LLAMA',
    configBlock: 'llama-cpp backends',
    run: () => runLlamaCppSection(llamaCppInput(settings, tempDir, baseEnv, guard, extraPids)),
  });

  const finishedAt = new Date();
  const logStats = gatewayLogPath === '/dev/null' ? null : await countLogLines(gatewayLogPath);

  const report = renderReport({
    settings,
    machine: { ...machine, loadAverageAtEnd: os.loadavg() },
    startedAt,
    finishedAt,
    gateway: {
      commandLine: tollgate.commandLine,
      overridden: gateway.overridden,
      logLevel: settings.logLevel,
      logRequests: settings.logRequests,
      logDestination: settings.gatewayLog ?? 'a temporary file (deleted after counting)',
      logStats,
      configSource: settings.gatewayConfig ?? 'generated',
    },
    targets: targets.map(({ key, label }) => ({ key, label })),
    sanityNotes,
    maxRuns,
    rateRuns,
    streamRuns,
    memory,
    quota,
    cache,
    routing,
    noise: {
      limitCores: settings.noise.limitCores,
      waitedSec: guard.waitedMs / 1000,
      repeats: guard.repeats,
      events: guard.events,
    },
  });
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, 'latest.md'), report);
  // Section 9 renders itself (its targets are in its own table) and goes after the rest.
  appendFileSync(path.join(RESULTS_DIR, 'latest.md'), `\n${llamaCppSection(llamaCpp)}`);
  writeFileSync(
    path.join(RESULTS_DIR, 'latest.json'),
    `${JSON.stringify({ settings, machine, startedAt, finishedAt, maxRuns, rateRuns, streamRuns, memory, quota, cache, routing, llamaCpp, noiseEvents: guard.events }, null, 2)}\n`,
  );
  process.stdout.write(report);
  process.stdout.write(`\n${llamaCppSection(llamaCpp)}`);
  progress(
    `done in ${((finishedAt.getTime() - startedAt.getTime()) / 60_000).toFixed(1)} min; report in bench/results/latest.md`,
  );
}

/** @typedef {'floor' | 'tollgate' | 'tollgateRedis'} QuotaTargetKey */
/**
 * @typedef {MeasuredRequests & { redis?: import('./lib/redis.mjs').RedisDelta, redisCpuMs?: number }} QuotaRun
 *   a fixed-rate run of section 6; tollgate+redis runs add what Redis did meanwhile
 */
/**
 * @typedef {object} QuotaResults
 * @property {number} rate
 * @property {Array<{ key: QuotaTargetKey, label: string }>} targets
 * @property {Record<QuotaTargetKey, QuotaRun[]>} runs
 * @property {Record<QuotaTargetKey, QuotaRun[]>} maxRuns the same targets as fast as they go
 *   (autocannon, settings.connections): max req/s and server CPU per request at saturation
 * @property {{ team: object, key: object }} limits what the bench team and key were given
 * @property {import('./lib/redis.mjs').RedisDelta} idle Redis traffic with no load
 * @property {number} idleSec
 * @property {{ redisVersion: string, gatewayCommand: string, gatewayLogLines: number | null }} setup
 * @property {string[]} notes sanity notes and anything odd
 * @property {unknown} standing GET /v1/tollgate/key after the runs (what the quota counted)
 * @property {import('./lib/redis.mjs').MonitorSummary & { requests: number, failures: number,
 *   windowMs: number }} sample MONITOR over a few sequential requests after the runs
 */
/** @typedef {QuotaResults | { skipped: string }} QuotaSection */

/**
 * Section 6: auth + quota + usage on Redis. Starts a throwaway redis-server and a second gateway
 * using it, creates a team and key with limits and budgets, then measures floor, tollgate (memory
 * store, key without limits) and tollgate+redis at one fixed rate, alternating like the rounds
 * above, and counts the Redis commands of every tollgate+redis run. Both extra servers are
 * stopped before it returns.
 * @param {object} ctx
 * @param {Settings} ctx.settings
 * @param {string} ctx.tempDir
 * @param {string} ctx.mockOrigin
 * @param {NodeJS.ProcessEnv} ctx.baseEnv
 * @param {NoiseGuard} ctx.guard
 * @param {number[]} ctx.extraPids
 * @param {ServerProcess} ctx.mock
 * @param {Target} ctx.floorTarget
 * @param {Target} ctx.tollgateTarget
 * @param {string} ctx.chatBody
 * @param {() => void} ctx.assertServersAlive
 * @returns {Promise<QuotaResults>}
 */
async function runQuotaSection(ctx) {
  const { settings, guard } = ctx;
  const [redisPort, gatewayPort] = await freePorts(2);
  if (redisPort === undefined || gatewayPort === undefined) throw new Error('no free ports');
  const origin = `http://${HOST}:${gatewayPort}`;
  progress(`section 6: starting redis-server on 127.0.0.1:${redisPort}`);
  const redis = await startRedis(redisPort, { cwd: REPO_ROOT, env: ctx.baseEnv });
  /** @type {ServerProcess | null} */
  let gatewayProcess = null;
  try {
    ctx.extraPids.push(redis.pid);
    const configPath = path.join(ctx.tempDir, 'tollgate.redis.bench.yaml');
    writeFileSync(
      configPath,
      gatewayConfigYaml(
        ctx.mockOrigin,
        gatewayPort,
        path.join(ctx.tempDir, 'data-redis'),
        `redis://127.0.0.1:${redisPort}`,
      ),
    );
    const logPath =
      settings.gatewayLog === null
        ? path.join(ctx.tempDir, 'gateway-redis.log')
        : settings.gatewayLog === '/dev/null'
          ? '/dev/null'
          : `${settings.gatewayLog}.redis`;
    const logFd = openSync(logPath, 'w');
    const command = gatewayCommand(settings, configPath);
    const server = new ServerProcess('tollgate+redis', command.command, command.args, {
      cwd: REPO_ROOT,
      stdout: logFd,
      stdoutFile: logPath,
      env: {
        ...ctx.baseEnv,
        ...GATEWAY_ENV,
        HOST,
        PORT: String(gatewayPort),
        LOG_LEVEL: settings.logLevel,
        LOG_REQUESTS: settings.logRequests,
        TOLLGATE_CONFIG: configPath,
        UPSTREAM_URL: ctx.mockOrigin,
        BENCH_UPSTREAM_URL: ctx.mockOrigin,
      },
    });
    gatewayProcess = server;
    closeSync(logFd);
    progress(`section 6: starting ${server.commandLine} (redis at 127.0.0.1:${redisPort})`);
    await server.waitReady(`${origin}/healthz`, 30_000);
    ctx.extraPids.push(server.pid);

    const created = await createTeamAndKey(origin, QUOTA_TEAM, QUOTA_KEY);
    /** @type {Target} */
    const redisTarget = {
      key: /** @type {TargetKey} */ ('tollgateRedis'),
      label: 'tollgate+redis',
      origin,
      proxy: server,
    };
    const notes = await sanityCheck(redisTarget, { ...settings, apiKey: created.key });
    const targets = [ctx.floorTarget, ctx.tollgateTarget, redisTarget];
    /** @param {Target} target */
    const spec = (target) => ({
      origin: target.origin,
      path: CHAT_PATH,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${target === redisTarget ? created.key : settings.apiKey}`,
      },
      body: ctx.chatBody,
    });
    const assertAlive = () => {
      ctx.assertServersAlive();
      for (const extra of [redis, server]) {
        if (!extra.alive)
          throw new Error(`${extra.name} ${extra.exitReason} during section 6.\n${extra.describeTail()}`);
      }
    };

    if (settings.warmupSec > 0) {
      progress(`section 6: warm-up tollgate+redis (${settings.warmupSec} s)`);
      const job = {
        kind: 'max',
        ...spec(redisTarget),
        connections: settings.connections,
        durationSec: settings.warmupSec,
      };
      await guard.run('section 6 warm-up tollgate+redis', async () => {
        const result = /** @type {RequestRunResult} */ (
          await runInChild(LOADGEN, job, (settings.warmupSec + 60) * 1000)
        );
        assertAlive();
        return { childCpuMs: result.processCpuMs };
      });
    }

    // What the gateway sends Redis on its own (timers, polling), to subtract from the runs.
    await sleep(1000);
    progress(`section 6: counting idle Redis commands for ${settings.quota.idleSec} s`);
    const idleBefore = await readRedisCounters(redisPort);
    await sleep(settings.quota.idleSec * 1000);
    const idle = redisDelta(idleBefore, await readRedisCounters(redisPort));

    /** @type {Record<QuotaTargetKey, QuotaRun[]>} */
    const runs = { floor: [], tollgate: [], tollgateRedis: [] };
    const rate = settings.quota.rate;
    for (let round = 0; round < settings.rounds; round += 1) {
      const tag = `section 6 round ${round + 1}/${settings.rounds}`;
      for (const target of rotate(targets, round)) {
        const job = {
          kind: 'paced',
          ...spec(target),
          rate,
          durationSec: settings.durationSec,
          warmupSec: settings.rateWarmupSec,
        };
        const timeoutMs = (settings.durationSec + settings.rateWarmupSec + 60) * 1000;
        const isRedis = target === redisTarget;
        const outcome = await guard.run(`${tag} ${rate} req/s ${target.label}`, async () => {
          const before = isRedis ? await readRedisCounters(redisPort) : null;
          const redisCpuBefore = readCpuMs(redis.pid);
          /** @type {{ result: RequestRunResult, serverCpu: ServerCpu }} */
          const measured = await withServerCpu(target, ctx.mock, () => runInChild(LOADGEN, job, timeoutMs));
          assertAlive();
          /** @type {{ redis?: import('./lib/redis.mjs').RedisDelta, redisCpuMs?: number }} */
          const extra = {};
          if (before !== null) {
            // Usage is written after each response; give the last ones time to land.
            await sleep(500);
            extra.redis = redisDelta(before, await readRedisCounters(redisPort));
            extra.redisCpuMs = readCpuMs(redis.pid) - redisCpuBefore;
          }
          return { ...measured, ...extra, childCpuMs: measured.result.processCpuMs };
        });
        /** @type {QuotaRun} */
        const run = {
          ...outcome.result,
          round: round + 1,
          serverCpu: outcome.serverCpu,
          foreignCores: outcome.foreignCores,
          ...(outcome.redis === undefined ? {} : { redis: outcome.redis, redisCpuMs: outcome.redisCpuMs }),
        };
        runs[/** @type {QuotaTargetKey} */ (target.key)].push(run);
        const perRequest =
          run.redis === undefined
            ? ''
            : `, ${(run.redis.totalCommands / run.completedTotal).toFixed(2)} Redis commands/req`;
        progress(
          `${tag} ${rate} req/s ${target.label}: p50 ${run.latencyMs.p50.toFixed(3)} ms, p99 ${run.latencyMs.p99.toFixed(3)} ms${perRequest}`,
        );
      }
    }

    // Max throughput of the same three targets, as fast as they go (one run each per round).
    /** @type {Record<QuotaTargetKey, QuotaRun[]>} */
    const maxRuns = { floor: [], tollgate: [], tollgateRedis: [] };
    for (let round = 0; round < settings.rounds; round += 1) {
      const tag = `section 6 round ${round + 1}/${settings.rounds}`;
      for (const target of rotate(targets, round)) {
        const job = {
          kind: 'max',
          ...spec(target),
          connections: settings.connections,
          durationSec: settings.durationSec,
        };
        const timeoutMs = (settings.durationSec + 60) * 1000;
        const outcome = await guard.run(`${tag} max ${target.label}`, async () => {
          const measured = await withServerCpu(target, ctx.mock, () => runInChild(LOADGEN, job, timeoutMs));
          assertAlive();
          return { ...measured, childCpuMs: measured.result.processCpuMs };
        });
        /** @type {QuotaRun} */
        const run = {
          ...outcome.result,
          round: round + 1,
          serverCpu: outcome.serverCpu,
          foreignCores: outcome.foreignCores,
        };
        maxRuns[/** @type {QuotaTargetKey} */ (target.key)].push(run);
        progress(`${tag} max ${target.label}: ${run.reqPerSec.toFixed(0)} req/s`);
      }
    }

    // Which commands the gateway sends and which its Lua scripts run: MONITOR over a few
    // sequential requests, apart from the timed runs (MONITOR slows Redis down).
    progress(`section 6: MONITOR sample of ${settings.quota.sampleRequests} sequential requests`);
    const monitor = await monitorRedis(redisPort);
    const sampleStartedAt = performance.now();
    let sampleFailures = 0;
    for (let index = 0; index < settings.quota.sampleRequests; index += 1) {
      const answer = await postChat(origin, JSON.parse(ctx.chatBody), created.key);
      if (answer.status !== 200) sampleFailures += 1;
    }
    await sleep(1000); // usage is recorded after the response
    const sampleLines = await monitor.stop();
    const sample = {
      requests: settings.quota.sampleRequests,
      failures: sampleFailures,
      windowMs: performance.now() - sampleStartedAt,
      ...summarizeMonitor(sampleLines),
    };
    if (sampleFailures > 0) notes.push(`MONITOR sample: ${sampleFailures} requests did not answer 200`);

    let standing = null;
    try {
      const answer = await fetch(`${origin}/v1/tollgate/key`, {
        headers: { authorization: `Bearer ${created.key}` },
      });
      standing = await answer.json();
    } catch (error) {
      notes.push(`GET /v1/tollgate/key failed: ${String(error)}`);
    }
    const info = await redisCommandSafe(redisPort, ['INFO', 'server']);
    const redisVersion = /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
    await server.stop(3000);
    const logStats = logPath === '/dev/null' ? null : await countLogLines(logPath);
    return {
      rate,
      targets: targets.map((target) => ({
        key: /** @type {QuotaTargetKey} */ (target.key),
        label: target.label,
      })),
      runs,
      maxRuns,
      limits: { team: QUOTA_TEAM, key: QUOTA_KEY },
      idle,
      idleSec: settings.quota.idleSec,
      setup: { redisVersion, gatewayCommand: server.commandLine, gatewayLogLines: logStats?.lines ?? null },
      notes,
      standing,
      sample,
    };
  } finally {
    await gatewayProcess?.stop(3000);
    await redis.stop(3000);
    progress('section 6: stopped tollgate+redis and redis-server');
  }
}

/** @typedef {'floor' | 'cacheMemory' | 'cacheRedis'} CacheTargetKey */
/**
 * @typedef {MeasuredRequests & { mockRequests?: number, redis?: import('./lib/redis.mjs').RedisDelta }} CacheRun
 *   a run of section 7; cache targets add how many requests reached the mock meanwhile, the
 *   Redis one what Redis did meanwhile (INFO, as in section 6)
 */
/**
 * @typedef {object} CacheResults
 * @property {number} rate
 * @property {Array<{ key: CacheTargetKey, label: string }>} targets
 * @property {Record<CacheTargetKey, CacheRun[]>} rateRuns hits at the fixed rate (floor: proxied)
 * @property {Record<CacheTargetKey, CacheRun[]>} maxRuns closed loop
 * @property {Record<'cacheMemory' | 'cacheRedis', { warmup: string[], mockAfterWarmup: number,
 *   sample: Record<string, number>, answerBytes: number }>} checks the warm-up headers (MISS then
 *   HIT), the mock's requests during the warm-up, x-tollgate-cache values of the closing sample
 * @property {number} sampleRequests
 * @property {{ redisVersion: string, gatewayCommand: string, body: string }} setup
 * @property {string[]} notes
 */
/** @typedef {CacheResults | { skipped: string }} CacheSection */

/**
 * The mock's count of chat requests (GET /stats), or null when it cannot say.
 * @param {string} mockOrigin
 * @returns {Promise<number | null>}
 */
async function mockChatCount(mockOrigin) {
  try {
    const answer = await fetch(`${mockOrigin}/stats`);
    const stats = /** @type {{ chatCompletions?: unknown }} */ (await answer.json());
    return typeof stats.chatCompletions === 'number' ? stats.chatCompletions : null;
  } catch {
    return null;
  }
}

/**
 * @param {string} origin
 * @param {string} body
 * @param {string} apiKey
 * @returns {Promise<{ status: number, cache: string, bytes: number }>}
 */
async function postCached(origin, body, apiKey) {
  const response = await request(origin + CHAT_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await response.body.text();
  return {
    status: response.statusCode,
    cache: String(response.headers['x-tollgate-cache'] ?? '(none)'),
    bytes: Buffer.byteLength(text),
  };
}

/**
 * Section 7: cache hits. Starts a throwaway redis-server and two gateways with the response cache
 * on (one on the embedded store, one on that Redis), each with a team key made like benchKey(),
 * warms one deterministic (temperature 0) ~1 KB answer into each and checks the next request is a
 * HIT, then measures hits at a fixed rate and closed loop next to the floor proxy, checking after
 * every cache run that no request reached the mock. Everything it started is stopped before it
 * returns.
 * @param {object} ctx
 * @param {Settings} ctx.settings
 * @param {string} ctx.tempDir
 * @param {string} ctx.mockOrigin
 * @param {NodeJS.ProcessEnv} ctx.baseEnv
 * @param {NoiseGuard} ctx.guard
 * @param {number[]} ctx.extraPids
 * @param {ServerProcess} ctx.mock
 * @param {Target} ctx.floorTarget
 * @param {string} ctx.chatBody
 * @param {() => void} ctx.assertServersAlive
 * @returns {Promise<CacheResults>}
 */
async function runCacheSection(ctx) {
  const { settings, guard } = ctx;
  const [redisPort, memoryPort, redisGatewayPort] = await freePorts(3);
  if (redisPort === undefined || memoryPort === undefined || redisGatewayPort === undefined)
    throw new Error('no free ports');
  progress(`section 7: starting redis-server on 127.0.0.1:${redisPort}`);
  const redis = await startRedis(redisPort, { cwd: REPO_ROOT, env: ctx.baseEnv });
  ctx.extraPids.push(redis.pid);
  /** @type {ServerProcess[]} */
  const gateways = [];
  try {
    /**
     * @param {string} name
     * @param {number} port
     * @param {string | null} redisUrl
     */
    const startGateway = async (name, port, redisUrl) => {
      const configPath = path.join(ctx.tempDir, `tollgate.${name}.bench.yaml`);
      writeFileSync(
        configPath,
        gatewayConfigYaml(ctx.mockOrigin, port, path.join(ctx.tempDir, `data-${name}`), redisUrl, {
          prices: false,
          cache: true,
        }),
      );
      const logPath =
        settings.gatewayLog === null
          ? path.join(ctx.tempDir, `gateway-${name}.log`)
          : settings.gatewayLog === '/dev/null'
            ? '/dev/null'
            : `${settings.gatewayLog}.${name}`;
      const logFd = openSync(logPath, 'w');
      const command = gatewayCommand(settings, configPath);
      const server = new ServerProcess(`tollgate ${name}`, command.command, command.args, {
        cwd: REPO_ROOT,
        stdout: logFd,
        stdoutFile: logPath,
        env: {
          ...ctx.baseEnv,
          ...GATEWAY_ENV,
          HOST,
          PORT: String(port),
          LOG_LEVEL: settings.logLevel,
          LOG_REQUESTS: settings.logRequests,
          TOLLGATE_CONFIG: configPath,
          UPSTREAM_URL: ctx.mockOrigin,
          BENCH_UPSTREAM_URL: ctx.mockOrigin,
        },
      });
      gateways.push(server);
      closeSync(logFd);
      const origin = `http://${HOST}:${port}`;
      progress(`section 7: starting ${server.commandLine} (${name})`);
      await server.waitReady(`${origin}/healthz`, 30_000);
      ctx.extraPids.push(server.pid);
      return { server, origin, apiKey: await benchKey(origin, settings) };
    };
    const memory = await startGateway('cache-memory', memoryPort, null);
    const onRedis = await startGateway('cache-redis', redisGatewayPort, `redis://127.0.0.1:${redisPort}`);

    const body = JSON.stringify({ ...JSON.parse(ctx.chatBody), temperature: 0 });
    /** @type {Array<Target & { apiKey: string }>} */
    const cacheTargets = [
      {
        key: /** @type {TargetKey} */ ('cacheMemory'),
        label: 'cache hit (memory)',
        origin: memory.origin,
        proxy: memory.server,
        apiKey: memory.apiKey,
      },
      {
        key: /** @type {TargetKey} */ ('cacheRedis'),
        label: 'cache hit (redis)',
        origin: onRedis.origin,
        proxy: onRedis.server,
        apiKey: onRedis.apiKey,
      },
    ];
    const assertAlive = () => {
      ctx.assertServersAlive();
      for (const extra of [redis, ...gateways]) {
        if (!extra.alive)
          throw new Error(`${extra.name} ${extra.exitReason} during section 7.\n${extra.describeTail()}`);
      }
    };
    /** @type {string[]} */
    const notes = [];

    // Warm the entry: the first request goes upstream (MISS), the second must be a HIT.
    /** @type {CacheResults['checks']} */
    const checks = /** @type {CacheResults['checks']} */ ({});
    for (const target of cacheTargets) {
      const before = await mockChatCount(ctx.mockOrigin);
      const first = await postCached(target.origin, body, target.apiKey);
      const second = await postCached(target.origin, body, target.apiKey);
      const after = await mockChatCount(ctx.mockOrigin);
      const warmup = [first.cache, second.cache];
      progress(
        `section 7: ${target.label} warm-up: ${first.status} ${first.cache}, then ${second.status} ${second.cache} (${second.bytes} B); mock requests +${after === null || before === null ? '?' : after - before}`,
      );
      if (first.status !== 200 || second.status !== 200 || second.cache.toUpperCase() !== 'HIT') {
        throw new Error(
          `${target.label}: the second identical temperature-0 request answered ${second.status} with x-tollgate-cache: ${second.cache} (first: ${first.status} ${first.cache}); expected 200 HIT`,
        );
      }
      if (before !== null && after !== null && after - before !== 1)
        notes.push(
          `${target.label}: the warm-up's two requests reached the mock ${after - before} times, expected 1`,
        );
      checks[/** @type {'cacheMemory' | 'cacheRedis'} */ (target.key)] = {
        warmup,
        mockAfterWarmup: after === null || before === null ? Number.NaN : after - before,
        sample: {},
        answerBytes: second.bytes,
      };
    }

    /** @param {Target & { apiKey?: string }} target */
    const spec = (target) => ({
      origin: target.origin,
      path: CHAT_PATH,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${target.apiKey ?? settings.apiKey}`,
      },
      body,
    });
    /**
     * One load job under the noise guard; for cache targets, the mock's request count around it.
     * @param {string} label
     * @param {Target} target
     * @param {object} job
     * @param {number} timeoutMs
     * @returns {Promise<{ result: RequestRunResult, serverCpu: ServerCpu, foreignCores: number,
     *   mockRequests?: number, redis?: import('./lib/redis.mjs').RedisDelta }>}
     */
    const measureCache = (label, target, job, timeoutMs) =>
      guard.run(label, async () => {
        const isCache = target !== ctx.floorTarget;
        const before = isCache ? await mockChatCount(ctx.mockOrigin) : null;
        const redisBefore = target.proxy === onRedis.server ? await readRedisCounters(redisPort) : null;
        /** @type {{ result: RequestRunResult, serverCpu: ServerCpu }} */
        const measured = await withServerCpu(target, ctx.mock, () => runInChild(LOADGEN, job, timeoutMs));
        assertAlive();
        /** @type {{ mockRequests?: number, redis?: import('./lib/redis.mjs').RedisDelta }} */
        const extra = {};
        if (redisBefore !== null) {
          await sleep(500); // usage is written after the response, as in section 6
          extra.redis = redisDelta(redisBefore, await readRedisCounters(redisPort));
        }
        const after = isCache ? await mockChatCount(ctx.mockOrigin) : null;
        if (before !== null && after !== null) extra.mockRequests = after - before;
        return { ...measured, ...extra, childCpuMs: measured.result.processCpuMs };
      });

    if (settings.warmupSec > 0) {
      for (const target of cacheTargets) {
        progress(`section 7: warm-up ${target.label} (${settings.warmupSec} s)`);
        const job = {
          kind: 'max',
          ...spec(target),
          connections: settings.connections,
          durationSec: settings.warmupSec,
        };
        await measureCache(
          `section 7 warm-up ${target.label}`,
          target,
          job,
          (settings.warmupSec + 60) * 1000,
        );
      }
    }

    const targets = [ctx.floorTarget, ...cacheTargets];
    /** @type {Record<CacheTargetKey, CacheRun[]>} */
    const rateRuns = { floor: [], cacheMemory: [], cacheRedis: [] };
    /** @type {Record<CacheTargetKey, CacheRun[]>} */
    const maxRuns = { floor: [], cacheMemory: [], cacheRedis: [] };
    const rate = settings.cache.rate;
    /**
     * @param {Record<CacheTargetKey, CacheRun[]>} into
     * @param {Target} target
     * @param {number} round
     * @param {{ result: RequestRunResult, serverCpu: ServerCpu, foreignCores: number, mockRequests?: number,
     *   redis?: import('./lib/redis.mjs').RedisDelta }} outcome
     */
    const record = (into, target, round, outcome) => {
      /** @type {CacheRun} */
      const run = {
        ...outcome.result,
        round: round + 1,
        serverCpu: outcome.serverCpu,
        foreignCores: outcome.foreignCores,
        ...(outcome.mockRequests === undefined ? {} : { mockRequests: outcome.mockRequests }),
        ...(outcome.redis === undefined ? {} : { redis: outcome.redis }),
      };
      into[/** @type {CacheTargetKey} */ (target.key)].push(run);
      if (run.mockRequests !== undefined && run.mockRequests !== 0)
        notes.push(
          `${target.label}, round ${round + 1}: ${run.mockRequests} requests reached the mock during a hit run`,
        );
      return run;
    };
    for (let round = 0; round < settings.rounds; round += 1) {
      const tag = `section 7 round ${round + 1}/${settings.rounds}`;
      const order = rotate(targets, round);
      for (const target of order) {
        const job = {
          kind: 'paced',
          ...spec(target),
          rate,
          durationSec: settings.durationSec,
          warmupSec: settings.rateWarmupSec,
        };
        const timeoutMs = (settings.durationSec + settings.rateWarmupSec + 60) * 1000;
        const outcome = await measureCache(`${tag} ${rate} req/s ${target.label}`, target, job, timeoutMs);
        const run = record(rateRuns, target, round, outcome);
        progress(
          `${tag} ${rate} req/s ${target.label}: p50 ${run.latencyMs.p50.toFixed(3)} ms, p99 ${run.latencyMs.p99.toFixed(3)} ms${run.mockRequests === undefined ? '' : `, mock +${run.mockRequests}`}${run.redis === undefined ? '' : `, ${(run.redis.totalCommands / run.completedTotal).toFixed(2)} Redis commands/req`}`,
        );
      }
      for (const target of order) {
        const job = {
          kind: 'max',
          ...spec(target),
          connections: settings.connections,
          durationSec: settings.durationSec,
        };
        const outcome = await measureCache(
          `${tag} max ${target.label}`,
          target,
          job,
          (settings.durationSec + 60) * 1000,
        );
        const run = record(maxRuns, target, round, outcome);
        progress(
          `${tag} max ${target.label}: ${Math.round(run.reqPerSec)} req/s, p99 ${run.latencyMs.p99.toFixed(2)} ms${run.mockRequests === undefined ? '' : `, mock +${run.mockRequests}`}`,
        );
      }
    }

    // What the hits said about themselves: x-tollgate-cache on a few sequential requests.
    for (const target of cacheTargets) {
      const check = checks[/** @type {'cacheMemory' | 'cacheRedis'} */ (target.key)];
      for (let index = 0; index < settings.cache.sampleRequests; index += 1) {
        const answer = await postCached(target.origin, body, target.apiKey);
        const value = answer.status === 200 ? answer.cache : `${answer.status} ${answer.cache}`;
        check.sample[value] = (check.sample[value] ?? 0) + 1;
      }
      if ((check.sample.HIT ?? 0) !== settings.cache.sampleRequests)
        notes.push(`${target.label}: closing sample x-tollgate-cache ${JSON.stringify(check.sample)}`);
    }

    const info = await redisCommandSafe(redisPort, ['INFO', 'server']);
    return {
      rate,
      targets: targets.map((target) => ({
        key: /** @type {CacheTargetKey} */ (target.key),
        label: target.label,
      })),
      rateRuns,
      maxRuns,
      checks,
      sampleRequests: settings.cache.sampleRequests,
      setup: {
        redisVersion: /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown',
        gatewayCommand: memory.server.commandLine,
        body,
      },
      notes,
    };
  } finally {
    for (const server of gateways) await server.stop(3000);
    await redis.stop(3000);
    progress('section 7: stopped the cache gateways and redis-server');
  }
}

/**
 * Section 8: a model on three deployments against the same model on one. Starts a gateway whose
 * `bench-model` has three deployments (three backends, all the mock; weighted, attempts and a
 * circuit each), then measures it and the main gateway (one deployment) alternately: proxy CPU
 * per request at a fixed rate, and time to first chunk over sequential streams. The extra gateway
 * is stopped before it returns.
 * @param {object} ctx
 * @param {Settings} ctx.settings
 * @param {string} ctx.tempDir
 * @param {string} ctx.mockOrigin
 * @param {NodeJS.ProcessEnv} ctx.baseEnv
 * @param {NoiseGuard} ctx.guard
 * @param {number[]} ctx.extraPids
 * @param {ServerProcess} ctx.mock
 * @param {Target} ctx.tollgateTarget
 * @param {string} ctx.chatBody
 * @param {string} ctx.streamBody
 * @param {number} ctx.streamMs
 * @param {() => void} ctx.assertServersAlive
 * @returns {Promise<import('./lib/routing-report.mjs').RoutingResults>}
 */
async function runRoutingSection(ctx) {
  const { settings, guard } = ctx;
  const [gatewayPort] = await freePorts(1);
  if (gatewayPort === undefined) throw new Error('no free port');
  const origin = `http://${HOST}:${gatewayPort}`;
  /** @type {ServerProcess | null} */
  let gatewayProcess = null;
  try {
    const configPath = path.join(ctx.tempDir, 'tollgate.routing.bench.yaml');
    writeFileSync(
      configPath,
      gatewayConfigYaml(ctx.mockOrigin, gatewayPort, path.join(ctx.tempDir, 'data-routing'), null, {
        deployments: 3,
      }),
    );
    const logPath =
      settings.gatewayLog === null
        ? path.join(ctx.tempDir, 'gateway-routing.log')
        : settings.gatewayLog === '/dev/null'
          ? '/dev/null'
          : `${settings.gatewayLog}.routing`;
    const logFd = openSync(logPath, 'w');
    const command = gatewayCommand(settings, configPath);
    const server = new ServerProcess('tollgate, 3 deployments', command.command, command.args, {
      cwd: REPO_ROOT,
      stdout: logFd,
      stdoutFile: logPath,
      env: {
        ...ctx.baseEnv,
        ...GATEWAY_ENV,
        HOST,
        PORT: String(gatewayPort),
        LOG_LEVEL: settings.logLevel,
        LOG_REQUESTS: settings.logRequests,
        TOLLGATE_CONFIG: configPath,
        UPSTREAM_URL: ctx.mockOrigin,
        BENCH_UPSTREAM_URL: ctx.mockOrigin,
      },
    });
    gatewayProcess = server;
    closeSync(logFd);
    progress(`section 8: starting ${server.commandLine}`);
    await server.waitReady(`${origin}/healthz`, 30_000);
    ctx.extraPids.push(server.pid);
    const created = await createTeamAndKey(origin, { name: 'bench-routing' }, {});
    /** @type {Target} */
    const threeTarget = {
      key: /** @type {TargetKey} */ ('tollgateThree'),
      label: 'tollgate, 3 deployments',
      origin,
      proxy: server,
    };
    const notes = await sanityCheck(threeTarget, { ...settings, apiKey: created.key });
    const targets = [ctx.tollgateTarget, threeTarget];
    /** @param {Target} target @param {string} body */
    const spec = (target, body) => ({
      origin: target.origin,
      path: CHAT_PATH,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${target === threeTarget ? created.key : settings.apiKey}`,
      },
      body,
    });
    const assertAlive = () => {
      ctx.assertServersAlive();
      if (!server.alive)
        throw new Error(`${server.name} ${server.exitReason} during section 8.\n${server.describeTail()}`);
    };
    /**
     * @template T
     * @param {string} label @param {Target} target @param {object} job @param {number} timeoutMs
     * @returns {Promise<{ result: T, serverCpu: ServerCpu, foreignCores: number }>}
     */
    const measure = (label, target, job, timeoutMs) =>
      guard.run(label, async () => {
        /** @type {{ result: T, serverCpu: ServerCpu }} */
        const measured = await withServerCpu(target, ctx.mock, () => runInChild(LOADGEN, job, timeoutMs));
        assertAlive();
        const { processCpuMs } = /** @type {{ processCpuMs: number }} */ (measured.result);
        return { ...measured, childCpuMs: processCpuMs };
      });
    const streamsJob = (/** @type {Target} */ target) => ({
      kind: 'streams',
      ...spec(target, ctx.streamBody),
      sequential: settings.streamsSequential,
      concurrent: 0,
      concurrency: settings.streamConcurrency,
    });
    const streamsTimeoutMs = (settings.streamsSequential + 4) * ctx.streamMs * 3 + 60_000;

    if (settings.warmupSec > 0) {
      // Both: with BENCH_ONLY=routing the main gateway had no warm-up either.
      for (const target of targets) {
        progress(`section 8: warm-up ${target.label} (${settings.warmupSec} s + a few streams)`);
        const job = {
          kind: 'max',
          ...spec(target, ctx.chatBody),
          connections: settings.connections,
          durationSec: settings.warmupSec,
        };
        await measure(`section 8 warm-up ${target.label}`, target, job, (settings.warmupSec + 60) * 1000);
        await measure(
          `section 8 warm-up streams ${target.label}`,
          target,
          { ...streamsJob(target), sequential: 10 },
          120_000,
        );
      }
    }

    /** @type {Record<import('./lib/routing-report.mjs').RoutingTargetKey, MeasuredRequests[]>} */
    const rateRuns = { tollgate: [], tollgateThree: [] };
    /** @type {Record<import('./lib/routing-report.mjs').RoutingTargetKey, MeasuredStreams[]>} */
    const streamRuns = { tollgate: [], tollgateThree: [] };
    const rate = settings.routing.rate;
    const keyOf = (/** @type {Target} */ target) =>
      /** @type {import('./lib/routing-report.mjs').RoutingTargetKey} */ (target.key);
    for (let round = 0; round < settings.rounds; round += 1) {
      const tag = `section 8 round ${round + 1}/${settings.rounds}`;
      for (const target of rotate(targets, round)) {
        const job = {
          kind: 'paced',
          ...spec(target, ctx.chatBody),
          rate,
          durationSec: settings.durationSec,
          warmupSec: settings.rateWarmupSec,
        };
        /** @type {{ result: RequestRunResult, serverCpu: ServerCpu, foreignCores: number }} */
        const { result, serverCpu, foreignCores } = await measure(
          `${tag} ${rate} req/s ${target.label}`,
          target,
          job,
          (settings.durationSec + settings.rateWarmupSec + 60) * 1000,
        );
        const run = { ...result, round: round + 1, serverCpu, foreignCores };
        rateRuns[keyOf(target)].push(run);
        progress(
          `${tag} ${rate} req/s ${target.label}: ${((serverCpu.proxyMs * 1000) / result.completedTotal).toFixed(0)} µs CPU/req, p50 ${result.latencyMs.p50.toFixed(3)} ms`,
        );
      }
      for (const target of rotate(targets, round)) {
        /** @type {{ result: StreamRunResult, serverCpu: ServerCpu, foreignCores: number }} */
        const { result, serverCpu, foreignCores } = await measure(
          `${tag} streams ${target.label}`,
          target,
          streamsJob(target),
          streamsTimeoutMs,
        );
        streamRuns[keyOf(target)].push({ ...result, round: round + 1, serverCpu, foreignCores });
        progress(
          `${tag} streams ${target.label}: TTFC p50 ${median(result.sequential.ttfcMs).toFixed(3)} ms`,
        );
      }
    }

    // The weighted strategy spreads the load: say how (a sample, apart from the timed runs).
    /** @type {Record<string, number>} */
    const answeredBy = {};
    for (let index = 0; index < 60; index += 1) {
      const response = await request(origin + CHAT_PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${created.key}` },
        body: ctx.chatBody,
      });
      await response.body.dump();
      const name = String(response.headers['x-tollgate-backend'] ?? `status ${response.statusCode}`);
      answeredBy[name] = (answeredBy[name] ?? 0) + 1;
    }
    if (Object.keys(answeredBy).length < 3)
      notes.push(`the sample reached ${Object.keys(answeredBy).join(', ')} only`);
    return {
      rate,
      targets: targets.map((target) => ({ key: keyOf(target), label: target.label })),
      rateRuns,
      streamRuns,
      answeredBy,
      notes,
    };
  } finally {
    await gatewayProcess?.stop(3000);
    progress('section 8: stopped the three-deployment gateway');
  }
}

/**
 * What section 9 needs from this run.
 * @param {Settings} settings
 * @param {string} tempDir
 * @param {NodeJS.ProcessEnv} baseEnv
 * @param {NoiseGuard} guard
 * @param {number[]} extraPids
 * @returns {import('./llama-cpp-section.mjs').SectionContext}
 */
const llamaCppInput = (settings, tempDir, baseEnv, guard, extraPids) => ({
  settings,
  tempDir,
  baseEnv,
  guard,
  extraPids,
  adminKey: BENCH_ADMIN_KEY,
  createTeamAndKey,
  progress,
});

/**
 * BENCH_ONLY=llama-cpp: section 9 alone, without the mock and the servers of sections 1-8.
 * @param {Settings} settings
 * @param {string} tempDir
 */
async function runLlamaCppAlone(settings, tempDir) {
  if (settings.gatewayCommand !== null || settings.gatewayConfig !== null)
    throw new Error('BENCH_ONLY=llama-cpp needs the generated configs and dist/server.js');
  if (!statSyncSafe(path.join(REPO_ROOT, 'dist', 'server.js')))
    throw new Error('dist/server.js not found: run `npm run bench` (it builds first) or `npm run build`.');
  const startedAt = new Date();
  const machine = describeMachine();
  const baseEnv = serverBaseEnv();
  /** @type {number[]} */
  const extraPids = [];
  const guard = new NoiseGuard(settings.noise, () => extraPids);
  /** @type {import('./llama-cpp-section.mjs').LlamaCppSection} */
  const section = await runLlamaCppSection(llamaCppInput(settings, tempDir, baseEnv, guard, extraPids)).catch(
    (error) => ({ skipped: `failed: ${error instanceof Error ? error.message : String(error)}` }),
  );
  const finishedAt = new Date();
  const report = [
    '# Tollgate benchmark: section 9 alone (BENCH_ONLY=llama-cpp)',
    '',
    `${machine.cpuModel}, ${machine.logicalCores} logical cores, ${machine.memoryGiB.toFixed(1)} GiB; ` +
      `${machine.kernel}; Node ${machine.node}; commit ${machine.commit}; ` +
      `${startedAt.toISOString()}, ${((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(0)} s; ` +
      `load average at start ${machine.loadAverageAtStart.map((value) => value.toFixed(2)).join(' ')}.`,
    '',
    llamaCppSection(section),
    ...(guard.events.length > 0 ? ['Noise:', '', ...guard.events.map((event) => `- ${event}`), ''] : []),
    `Noise guard: waited ${(guard.waitedMs / 1000).toFixed(1)} s, ${guard.repeats} measurement(s) repeated.`,
    '',
  ].join('\n');
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, 'llama-cpp.md'), report);
  writeFileSync(
    path.join(RESULTS_DIR, 'llama-cpp.json'),
    `${JSON.stringify({ settings, machine, startedAt, finishedAt, llamaCpp: section, noiseEvents: guard.events }, null, 2)}\n`,
  );
  process.stdout.write(report);
  if ('skipped' in section && section.skipped.startsWith('failed')) throw new Error(section.skipped);
}

/**
 * @param {number} port
 * @param {string[]} args
 */
async function redisCommandSafe(port, args) {
  try {
    return await redisCommand(port, args);
  } catch {
    return '';
  }
}

/** @param {string} file */
function statSyncSafe(file) {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

let shuttingDown = false;
/** @param {number} exitCode */
async function shutdown(exitCode) {
  if (shuttingDown) return;
  shuttingDown = true;
  await stopAll(2000);
  for (const task of cleanupTasks) {
    try {
      task();
    } catch {
      // Best effort: a leftover temp dir must not hide the real exit code.
    }
  }
  process.exit(exitCode);
}

// Servers run in their own process groups, so Ctrl-C reaches only this process: pass it on.
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));
process.on('SIGHUP', () => void shutdown(129));
process.on('exit', killAllNow);

main().then(
  () => shutdown(0),
  (error) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return shutdown(1);
  },
);
