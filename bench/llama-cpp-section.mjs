// Section 9 of the benchmark: an in-process model (a `type: llama-cpp` backend) on a tiny GGUF
// the run writes itself (test/support/tiny-gguf.ts: seeded random weights, no download; written
// to the run's temp folder and deleted with it).
//
// (a) Overhead: the same chat requests (temperature 0, max_tokens 16 and 64) answered
//     - directly: node-llama-cpp in one process, no HTTP (bench/lib/llama-direct.mjs), and
//     - through the gateway: `dist/server.js` with a llama-cpp backend on the same file, same
//       threads and context, over HTTP from a separate client process (bench/lib/llama-client.mjs),
//       non-streamed and streamed, and
//     - through the gateway's llama-cpp backend alone: its adapter called in one process, no HTTP
//       (bench/lib/llama-direct.mjs with via: adapter), to split the overhead between the adapter
//       and the rest of the gateway, and
//     - through the HTTP floor: a bare node:http server calling node-llama-cpp as the direct path
//       does (bench/lib/llama-http-floor.mjs), with the same client as the gateway: what one HTTP
//       hop in front of an in-process model costs here, whatever the server.
//     Overhead per request = gateway − direct at 16 tokens; per streamed token = the growth from
//     16 to 64 tokens through the gateway minus the direct growth, over the 48 extra tokens.
//     Rounds alternate the seven paths and rotate their order; each figure is the median of the
//     per-round differences (each round pairs the paths measured minutes apart at most).
// (b) Queueing: a second gateway whose model has S slots; bursts of 2×S concurrent requests,
//     first with a queue of S (all must be answered, half of them after waiting), then with a
//     queue of ⌊S/2⌋ (the rest must be refused with 429). Queue waits and refusals come from the
//     gateway's own metrics (GET /admin/metrics), read before and after the bursts.
import { closeSync, openSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, GATEWAY_ENV, runInChild, ServerProcess } from './lib/procs.mjs';
import { summarize } from './lib/stats.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const DIRECT = path.join(BENCH_DIR, 'lib', 'llama-direct.mjs');
const CLIENT = path.join(BENCH_DIR, 'lib', 'llama-client.mjs');
const HTTP_FLOOR = path.join(BENCH_DIR, 'lib', 'llama-http-floor.mjs');
const HOST = '127.0.0.1';
const MODEL = 'tiny';
const QUEUED_MODEL = 'tiny-queued';
const TIGHT_MODEL = 'tiny-tight';
/** The gateway's default context per slot; the direct side gets the same. */
const CONTEXT_SIZE = 4096;
const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Explain in a few sentences what an API gateway does.' },
];

/**
 * @typedef {object} LlamaCppSettings
 * @property {boolean} enabled
 * @property {boolean} only BENCH_ONLY=llama-cpp
 * @property {number} threads
 * @property {number} rounds
 * @property {number} requests timed requests per path and length per round
 * @property {number} warmup untimed requests per path and length before each measurement
 * @property {number} shortTokens
 * @property {number} longTokens
 * @property {number} slots of the queueing gateway's model
 * @property {number} bursts
 */

/**
 * @param {(name: string, fallback: number, min?: number) => number} envNumber
 * @param {boolean} quick
 * @returns {LlamaCppSettings}
 */
export function readLlamaCppSettings(envNumber, quick) {
  const shortTokens = Math.round(envNumber('BENCH_LLAMA_SHORT', 16, 1));
  const longTokens = Math.round(envNumber('BENCH_LLAMA_LONG', 64, shortTokens + 1));
  return {
    enabled: process.env.BENCH_LLAMA !== '0',
    only: process.env.BENCH_ONLY === 'llama-cpp',
    threads: Math.round(envNumber('BENCH_LLAMA_THREADS', 1, 1)),
    // More, shorter rounds than the other sections: the shared machine's noise comes in bursts of
    // seconds, and the median of many per-round differences shrugs off a spoiled round.
    rounds: Math.round(envNumber('BENCH_LLAMA_ROUNDS', quick ? 1 : 5, 1)),
    requests: Math.round(envNumber('BENCH_LLAMA_REQUESTS', quick ? 60 : 100, 5)),
    warmup: Math.round(envNumber('BENCH_LLAMA_WARMUP', quick ? 10 : 20, 0)),
    shortTokens,
    longTokens,
    slots: Math.round(envNumber('BENCH_LLAMA_SLOTS', 2, 1)),
    bursts: Math.round(envNumber('BENCH_LLAMA_BURSTS', quick ? 10 : 30, 1)),
  };
}

/** @typedef {'direct' | 'adapter' | 'adapterStream' | 'floor' | 'floorStream' | 'gateway' | 'gatewayStream'} PathKey */
/** @typedef {'short' | 'long'} LengthKey */
/**
 * @typedef {object} BlockRun
 * @property {number} round
 * @property {number} p50 ms
 * @property {number} mean ms
 * @property {number} p99 ms
 * @property {number} cpuUsPerRequest the serving process's CPU (direct: its own process; gateway: the
 *   gateway's, from /proc), all threads, per request
 * @property {number} count
 * @property {number} failures non-200 answers, or answers with the wrong token count
 * @property {number} foreignCores
 */
/**
 * @typedef {object} BurstSummary
 * @property {number} concurrency
 * @property {number} queue
 * @property {number} bursts
 * @property {Record<string, number>} statuses
 * @property {number[]} byPositionP50Ms p50 over bursts of the i-th answer to arrive (time from the
 *   burst's start)
 * @property {number} refusedP50Ms p50 time to a 429 (NaN when none)
 * @property {string[]} retryAfter distinct retry-after values of the 429s
 * @property {number} wrongTokens 200 answers with the wrong token count
 * @property {number} minServedPerBurst fewest 200 answers in one burst
 * @property {{ count: number, sumSec: number, buckets: Array<[string, number]>, rejected: number }} metrics
 *   deltas of the gateway's queue metrics over the timed bursts
 */
/**
 * @typedef {object} LlamaCppResults
 * @property {object} setup
 * @property {Record<PathKey, Record<LengthKey, BlockRun[]>>} runs
 * @property {{ aloneP50Ms: number, queued: BurstSummary, tight: BurstSummary }} queueing
 * @property {string[]} notes
 */
/** @typedef {LlamaCppResults | { skipped: string }} LlamaCppSection */

/**
 * @typedef {object} SectionContext
 * @property {{ logLevel: string, logRequests: string, gatewayLog: string | null, llamaCpp: LlamaCppSettings }} settings
 * @property {string} tempDir
 * @property {NodeJS.ProcessEnv} baseEnv
 * @property {import('./lib/noise.mjs').NoiseGuard} guard
 * @property {number[]} extraPids servers this section starts are added (their CPU is not noise)
 * @property {string} adminKey
 * @property {(origin: string, teamBody: object, keyBody: object) => Promise<{ key: string }>} createTeamAndKey
 * @property {(message: string) => void} progress
 */

/**
 * @param {Array<[string, object]>} backends name → llama-cpp options besides type and model
 * @param {Array<[string, string]>} models public name → backend
 * @param {{ port: number, modelPath: string, threads: number, dataDir: string, adminKey: string }} options
 */
function configYaml(backends, models, options) {
  return [
    '# Generated by bench/llama-cpp-section.mjs for one benchmark run.',
    `server: { host: ${HOST}, port: ${options.port} }`,
    // Ready only once every model has loaded: the run waits on /readyz.
    'readiness: { requireAllBackends: true, cacheMs: 0 }',
    'backends:',
    ...backends.map(
      ([name, extra]) =>
        `  ${name}: ${JSON.stringify({ type: 'llama-cpp', model: options.modelPath, contextSize: CONTEXT_SIZE, threads: options.threads, ...extra })}`,
    ),
    'models:',
    ...models.map(([name, backend]) => `  ${name}: { backend: ${backend} }`),
    `admin: { key: "${options.adminKey}" }`,
    `dataDir: "${options.dataDir}"`,
    '',
  ].join('\n');
}

/**
 * Starts dist/server.js with `yaml` and waits until its models are loaded.
 * @param {SectionContext} ctx
 * @param {string} name
 * @param {string} yaml
 * @param {number} port
 */
async function startGateway(ctx, name, yaml, port) {
  const configPath = path.join(ctx.tempDir, `tollgate.${name}.bench.yaml`);
  writeFileSync(configPath, yaml);
  const { gatewayLog } = ctx.settings;
  const logPath =
    gatewayLog === null
      ? path.join(ctx.tempDir, `gateway-${name}.log`)
      : gatewayLog === '/dev/null'
        ? '/dev/null'
        : `${gatewayLog}.${name}`;
  const logFd = openSync(logPath, 'w');
  const server = new ServerProcess(
    `tollgate (${name})`,
    process.execPath,
    ['dist/server.js', '--config', configPath],
    {
      cwd: REPO_ROOT,
      stdout: logFd,
      stdoutFile: logPath,
      env: {
        ...ctx.baseEnv,
        ...GATEWAY_ENV,
        HOST,
        PORT: String(port),
        LOG_LEVEL: ctx.settings.logLevel,
        LOG_REQUESTS: ctx.settings.logRequests,
      },
    },
  );
  closeSync(logFd);
  return serving(ctx, server, `http://${HOST}:${port}/readyz`);
}

/**
 * Resolves with `server` once `readyUrl` answers; from then on its CPU is the section's own, not
 * noise.
 * @param {SectionContext} ctx
 * @param {ServerProcess} server
 * @param {string} readyUrl
 */
async function serving(ctx, server, readyUrl) {
  ctx.progress(`section 9: starting ${server.commandLine}`);
  await server.waitReady(readyUrl, 60_000);
  ctx.extraPids.push(server.pid);
  return server;
}

/**
 * @param {number[]} values
 * @returns {{ p50: number, mean: number, p99: number, count: number }}
 */
const latencySummary = (values) => {
  const summary = summarize(values);
  return { p50: summary.p50, mean: summary.mean, p99: summary.p99, count: summary.count };
};

/**
 * The queue metrics of one backend in a Prometheus text.
 * @param {string} text
 * @param {string} backend
 */
function queueMetrics(text, backend) {
  const label = `backend="${backend}"`;
  /** @type {Array<[string, number]>} */
  const buckets = [];
  let count = 0;
  let sumSec = 0;
  let rejected = 0;
  for (const line of text.split('\n')) {
    if (!line.includes(label)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('tollgate_backend_queue_wait_seconds_bucket')) {
      const le = /le="([^"]+)"/.exec(line)?.[1] ?? '?';
      buckets.push([le, value]);
    } else if (line.startsWith('tollgate_backend_queue_wait_seconds_sum')) sumSec = value;
    else if (line.startsWith('tollgate_backend_queue_wait_seconds_count')) count = value;
    else if (line.startsWith('tollgate_backend_queue_rejected_total')) rejected = value;
  }
  return { count, sumSec, buckets, rejected };
}

/**
 * @param {ReturnType<typeof queueMetrics>} before
 * @param {ReturnType<typeof queueMetrics>} after
 */
function metricsDelta(before, after) {
  return {
    count: after.count - before.count,
    sumSec: after.sumSec - before.sumSec,
    buckets: after.buckets.map(
      ([le, value]) =>
        /** @type {[string, number]} */ ([le, value - (before.buckets.find(([b]) => b === le)?.[1] ?? 0)]),
    ),
    rejected: after.rejected - before.rejected,
  };
}

/**
 * @param {{ bursts: Array<Array<{ status: number, ms: number, endedMs: number, retryAfter: string | null,
 *   completionTokens: number }>>, metricsBefore: string, metricsAfter: string }} result
 * @param {string} backend
 * @param {number} concurrency
 * @param {number} queue
 * @param {number} expectTokens
 * @returns {BurstSummary}
 */
function summarizeBursts(result, backend, concurrency, queue, expectTokens) {
  /** @type {Record<string, number>} */
  const statuses = {};
  /** @type {number[][]} */
  const byPosition = Array.from({ length: concurrency }, () => []);
  const refused = [];
  const retryAfter = new Set();
  let wrongTokens = 0;
  let minServedPerBurst = Number.POSITIVE_INFINITY;
  for (const burst of result.bursts) {
    const answered = [];
    for (const answer of burst) {
      statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
      if (answer.status === 429) {
        refused.push(answer.ms);
        retryAfter.add(answer.retryAfter ?? 'none');
      } else if (answer.status === 200) {
        answered.push(answer.endedMs);
        if (answer.completionTokens !== expectTokens) wrongTokens += 1;
      }
    }
    minServedPerBurst = Math.min(minServedPerBurst, answered.length);
    answered.sort((a, b) => a - b);
    for (const [index, ms] of answered.entries()) byPosition[index]?.push(ms);
  }
  return {
    concurrency,
    queue,
    bursts: result.bursts.length,
    statuses,
    byPositionP50Ms: byPosition.filter((list) => list.length > 0).map((list) => summarize(list).p50),
    refusedP50Ms: summarize(refused).p50,
    retryAfter: [...retryAfter],
    wrongTokens,
    minServedPerBurst: Number.isFinite(minServedPerBurst) ? minServedPerBurst : 0,
    metrics: metricsDelta(
      queueMetrics(result.metricsBefore, backend),
      queueMetrics(result.metricsAfter, backend),
    ),
  };
}

/**
 * Starts bench/lib/llama-http-floor.mjs on the model and waits until it has loaded.
 * @param {SectionContext} ctx
 * @param {{ modelPath: string, threads: number, port: number }} options
 */
async function startFloor(ctx, options) {
  const server = new ServerProcess(
    'HTTP floor (node:http + node-llama-cpp)',
    process.execPath,
    [HTTP_FLOOR],
    {
      cwd: REPO_ROOT,
      stdout: 'ignore',
      // The gateway's environment (GATEWAY_ENV), so the two servers differ only in what they run.
      env: {
        ...ctx.baseEnv,
        ...GATEWAY_ENV,
        HOST,
        PORT: String(options.port),
        MODEL_PATH: options.modelPath,
        THREADS: String(options.threads),
        CONTEXT_SIZE: String(CONTEXT_SIZE),
      },
    },
  );
  return serving(ctx, server, `http://${HOST}:${options.port}/healthz`);
}

/**
 * @template T
 * @param {SectionContext} ctx
 * @param {string} label
 * @param {string} modulePath
 * @param {object} job
 * @param {number} timeoutMs
 * @returns {Promise<T & { foreignCores: number }>}
 */
function measure(ctx, label, modulePath, job, timeoutMs) {
  return ctx.guard.run(label, async () => {
    /** @type {T & { processCpuMs: number }} */
    const result = await runInChild(modulePath, job, timeoutMs);
    return { ...result, childCpuMs: result.processCpuMs };
  });
}

/**
 * Runs section 9. Resolves `{ skipped }` when node-llama-cpp cannot run here; throws on any other
 * failure (the caller reports it). Every gateway it starts is stopped before it returns.
 * @param {SectionContext} ctx
 * @returns {Promise<LlamaCppSection>}
 */
export async function runLlamaCppSection(ctx) {
  const { settings } = ctx;
  const llama = settings.llamaCpp;
  const notes = [];
  // The test suite's generator, imported as TypeScript (Node strips the types): one generator,
  // no copy of it here. The file lives in the run's temp folder, deleted with it.
  const { writeTinyGguf } = await import('../test/support/tiny-gguf.ts');
  const modelPath = writeTinyGguf(MODEL, ctx.tempDir);
  const modelBytes = statSync(modelPath).size;
  const modelSpec = { modelPath, threads: llama.threads, contextSize: CONTEXT_SIZE, messages: MESSAGES };

  ctx.progress('section 9: loading node-llama-cpp and the tiny model in a probe process');
  /** @type {{ unavailable?: string, chatWrapper?: string, contextSize?: number, nodeLlamaCpp?: string,
   *   loadMs?: number, text?: string, tokens?: number, promptTokens?: number }} */
  const probe = await runInChild(
    DIRECT,
    { kind: 'probe', ...modelSpec, maxTokens: llama.shortTokens },
    120_000,
  );
  if (probe.unavailable !== undefined) {
    ctx.progress(`section 9 skipped: node-llama-cpp cannot run here (${probe.unavailable})`);
    return { skipped: `node-llama-cpp cannot run here: ${probe.unavailable}` };
  }
  if (probe.tokens !== llama.shortTokens)
    notes.push(`direct probe generated ${probe.tokens} tokens, expected ${llama.shortTokens}`);

  /** @type {ServerProcess[]} */
  const gateways = [];
  try {
    const [port, queuePort, floorPort] = await freePorts(3);
    if (port === undefined || queuePort === undefined || floorPort === undefined)
      throw new Error('no free port');
    const origin = `http://${HOST}:${port}`;
    const common = { modelPath, threads: llama.threads, adminKey: ctx.adminKey };
    const gateway = await startGateway(
      ctx,
      'llama-cpp',
      configYaml([['local', { slots: 1, queue: 16 }]], [[MODEL, 'local']], {
        ...common,
        port,
        dataDir: path.join(ctx.tempDir, 'data-llama-cpp'),
      }),
      port,
    );
    gateways.push(gateway);
    const { key: apiKey } = await ctx.createTeamAndKey(origin, { name: 'bench-llama-cpp' }, {});
    const floor = await startFloor(ctx, { modelPath, threads: llama.threads, port: floorPort });
    gateways.push(floor);
    const floorOrigin = `http://${HOST}:${floorPort}`;
    /** The HTTP servers measured, and the client's settings for each. */
    const servers = {
      gateway: { server: gateway, origin, apiKey },
      floor: { server: floor, origin: floorOrigin, apiKey: 'none' },
    };

    const body = (/** @type {number} */ maxTokens, /** @type {boolean} */ stream) =>
      JSON.stringify({
        model: MODEL,
        messages: MESSAGES,
        max_tokens: maxTokens,
        temperature: 0,
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      });
    /** @type {Record<LengthKey, number>} */
    const tokensOf = { short: llama.shortTokens, long: llama.longTokens };
    /** @type {PathKey[]} */
    const paths = ['direct', 'adapter', 'adapterStream', 'floor', 'floorStream', 'gateway', 'gatewayStream'];
    const runs = /** @type {Record<PathKey, Record<LengthKey, BlockRun[]>>} */ (
      Object.fromEntries(paths.map((key) => [key, { short: [], long: [] }]))
    );
    const texts = /** @type {Record<PathKey, string>} */ (
      Object.fromEntries(paths.map((key) => [key, key === 'direct' ? (probe.text ?? '') : '']))
    );
    const timeoutMs = 180_000;

    // The HTTP servers live through every round, so they get a longer warm-up once (JIT, pools),
    // as in sections 1-8; the in-process paths start fresh each round and warm up inside their job.
    for (const [name, target] of Object.entries(servers)) {
      ctx.progress(`section 9: warm-up of the ${name} (100 requests of each kind)`);
      await measure(
        ctx,
        `section 9 warm-up ${name}`,
        CLIENT,
        {
          kind: 'sequential',
          origin: target.origin,
          apiKey: target.apiKey,
          gatewayPid: target.server.pid,
          blocks: [false, true].flatMap((stream) =>
            [llama.shortTokens, llama.longTokens].map((tokens) => ({
              label: `${stream ? 'stream' : 'plain'}-${tokens}`,
              body: body(tokens, stream),
              stream,
              expectTokens: tokens,
            })),
          ),
          requests: 100,
          warmup: 0,
        },
        timeoutMs,
      );
    }

    for (let round = 0; round < llama.rounds; round += 1) {
      const tag = `section 9 round ${round + 1}/${llama.rounds}`;
      /** @type {LengthKey[]} */
      const lengths = round % 2 === 0 ? ['short', 'long'] : ['long', 'short'];
      const order = paths.map((_, index) => paths[(index + round) % paths.length] ?? 'direct');
      for (const key of order) {
        /** @type {Record<string, { latencyMs: number[], cpuMs?: number, gatewayCpuMs?: number,
         *   failures?: string[], wrongTokens?: number, tokens?: number, text: string }>} */
        let blocks;
        let foreignCores;
        if (key === 'direct' || key === 'adapter' || key === 'adapterStream') {
          const job = {
            kind: 'direct',
            via: key === 'direct' ? 'library' : key,
            ...modelSpec,
            blocks: lengths.map((length) => ({ label: length, maxTokens: tokensOf[length] })),
            requests: llama.requests,
            warmup: llama.warmup,
          };
          /** @type {{ blocks: typeof blocks, foreignCores: number }} */
          const result = await measure(ctx, `${tag} ${key}`, DIRECT, job, timeoutMs);
          ({ blocks, foreignCores } = result);
        } else {
          const stream = key === 'gatewayStream' || key === 'floorStream';
          const target = key === 'floor' || key === 'floorStream' ? servers.floor : servers.gateway;
          const job = {
            kind: 'sequential',
            origin: target.origin,
            apiKey: target.apiKey,
            gatewayPid: target.server.pid,
            blocks: lengths.map((length) => ({
              label: length,
              body: body(tokensOf[length], stream),
              stream,
              expectTokens: tokensOf[length],
            })),
            requests: llama.requests,
            warmup: llama.warmup,
          };
          /** @type {{ blocks: typeof blocks, foreignCores: number }} */
          const result = await measure(ctx, `${tag} ${key}`, CLIENT, job, timeoutMs);
          ({ blocks, foreignCores } = result);
          if (!target.server.alive)
            throw new Error(
              `${target.server.name} ${target.server.exitReason} during section 9.\n${target.server.describeTail()}`,
            );
        }
        for (const length of lengths) {
          const block = blocks[length];
          if (block === undefined) throw new Error(`${key}: no ${length} block in the result`);
          const inProcess = block.cpuMs !== undefined;
          const cpuMs = inProcess ? (block.cpuMs ?? Number.NaN) : (block.gatewayCpuMs ?? Number.NaN);
          const failures =
            (block.failures?.length ?? 0) +
            (block.wrongTokens ?? 0) +
            (inProcess && block.tokens !== tokensOf[length] ? block.latencyMs.length : 0);
          runs[key][length].push({
            round: round + 1,
            ...latencySummary(block.latencyMs),
            cpuUsPerRequest: (cpuMs * 1000) / block.latencyMs.length,
            failures,
            foreignCores,
          });
          for (const failure of block.failures ?? [])
            notes.push(`${key} ${length}, round ${round + 1}: ${failure}`);
          if (length === 'short' && key !== 'direct') texts[key] = block.text;
        }
        const short = runs[key].short.at(-1);
        const long = runs[key].long.at(-1);
        ctx.progress(
          `${tag} ${key}: p50 ${short?.p50.toFixed(3)} ms (${llama.shortTokens} tokens), ${long?.p50.toFixed(3)} ms (${llama.longTokens} tokens)`,
        );
      }
    }
    for (const key of /** @type {PathKey[]} */ (paths.filter((key) => key !== 'direct')))
      if (texts[key] !== texts.direct)
        notes.push(
          `${key} answered ${JSON.stringify(texts[key])}, direct ${JSON.stringify(texts.direct)}: not the same work?`,
        );
    await gateway.stop(3000);
    await floor.stop(3000);

    // (b) Queueing, on a gateway of its own so the overhead runs above had one model, one slot.
    const slots = llama.slots;
    const tightQueue = Math.floor(slots / 2);
    const queueOrigin = `http://${HOST}:${queuePort}`;
    const queueGateway = await startGateway(
      ctx,
      'llama-cpp-queue',
      configYaml(
        [
          ['queued', { slots, queue: slots }],
          ['tight', { slots, queue: tightQueue }],
        ],
        [
          [QUEUED_MODEL, 'queued'],
          [TIGHT_MODEL, 'tight'],
        ],
        { ...common, port: queuePort, dataDir: path.join(ctx.tempDir, 'data-llama-cpp-queue') },
      ),
      queuePort,
    );
    gateways.push(queueGateway);
    const queueKey = (await ctx.createTeamAndKey(queueOrigin, { name: 'bench-llama-cpp-queue' }, {})).key;
    const queuedBody = (/** @type {string} */ model) =>
      JSON.stringify({ model, messages: MESSAGES, max_tokens: llama.shortTokens, temperature: 0 });
    /** @type {{ blocks: Record<string, { latencyMs: number[] }> }} */
    const alone = await measure(
      ctx,
      'section 9 one request at a time (queueing gateway)',
      CLIENT,
      {
        kind: 'sequential',
        origin: queueOrigin,
        apiKey: queueKey,
        gatewayPid: queueGateway.pid,
        blocks: [
          { label: 'alone', body: queuedBody(QUEUED_MODEL), stream: false, expectTokens: llama.shortTokens },
        ],
        requests: 50,
        warmup: 10,
      },
      timeoutMs,
    );
    const burstJob = (/** @type {string} */ model) => ({
      kind: 'burst',
      origin: queueOrigin,
      apiKey: queueKey,
      adminKey: ctx.adminKey,
      body: queuedBody(model),
      concurrency: 2 * slots,
      bursts: llama.bursts,
      warmupBursts: 3,
    });
    const queued = summarizeBursts(
      await measure(
        ctx,
        `section 9 bursts of ${2 * slots} (queue ${slots})`,
        CLIENT,
        burstJob(QUEUED_MODEL),
        timeoutMs,
      ),
      'queued',
      2 * slots,
      slots,
      llama.shortTokens,
    );
    ctx.progress(`section 9 bursts of ${2 * slots}, queue ${slots}: ${JSON.stringify(queued.statuses)}`);
    const tight = summarizeBursts(
      await measure(
        ctx,
        `section 9 bursts of ${2 * slots} (queue ${tightQueue})`,
        CLIENT,
        burstJob(TIGHT_MODEL),
        timeoutMs,
      ),
      'tight',
      2 * slots,
      tightQueue,
      llama.shortTokens,
    );
    ctx.progress(`section 9 bursts of ${2 * slots}, queue ${tightQueue}: ${JSON.stringify(tight.statuses)}`);

    return {
      setup: {
        modelBytes,
        nodeLlamaCpp: probe.nodeLlamaCpp,
        chatWrapper: probe.chatWrapper,
        contextSize: probe.contextSize,
        promptTokens: probe.promptTokens,
        threads: llama.threads,
        requests: llama.requests,
        warmup: llama.warmup,
        rounds: llama.rounds,
        shortTokens: llama.shortTokens,
        longTokens: llama.longTokens,
        slots,
        gatewayCommand: gateway.commandLine,
        floorCommand: floor.commandLine,
      },
      runs,
      queueing: { aloneP50Ms: latencySummary(alone.blocks.alone?.latencyMs ?? []).p50, queued, tight },
      notes,
    };
  } finally {
    for (const server of gateways) await server.stop(3000);
    ctx.progress('section 9: stopped its gateways');
  }
}
