// Instructions per request, counted by Valgrind (callgrind), for builds or settings side by side:
//   node bench/instructions.mjs <target> [<target> ...]
// where a target is a checkout (its dist/server.js, built first), `floor` or `reference` (this
// checkout's bench/floor-proxy.mjs and bench/reference-gateway.mjs, as in bench/reference.mjs);
// e.g. `node bench/instructions.mjs floor reference .` or `node bench/instructions.mjs ../before .`
//
// Why: on a shared 2-core VM, CPU time per request moves by a third between runs of the same
// build (bench/compare.mjs), so a change worth a few percent cannot be seen by timing it.
// Instructions executed, with V8 made deterministic (BENCH_INSTR_NODE_FLAGS, `--predictable` by
// default), come out the same run after run. They are not time (a cache miss costs more than an
// add, and a system call's kernel work is not counted), and `--predictable` moves V8's GC and
// compiler threads' work onto the main thread, so they say whether a change does less work in
// the process, not how much faster it is.
//
// Each target runs under `valgrind --tool=callgrind` in front of the bench's mock; a checkout's
// gateway on the embedded store with a team key without limits. All its threads are counted. One
// keep-alive client sends BENCH_INSTR_WARMUP (30,000) chat completions uncounted (Valgrind runs
// them without its instrumentation, ~4-5x faster than with it), then BENCH_INSTR_REQUESTS (1,000)
// counted ones. The count is split three ways: V8's optimizing compilers, the garbage collector,
// and the rest, the request's own work, which is the figure to compare (SIDE_WORK says why).
// BENCH_INSTR_STREAM=1 sends streamed requests instead. BENCH_INSTR_STORE=redis runs each
// checkout's gateway on a throwaway redis-server with `npm run bench` section 6's team and key
// (request and token rates, concurrency, a day token budget and a month USD budget): Redis's own
// work is in its own process and not counted. At Valgrind's pace the gateway sees 43-100 requests a
// second, so work it batches per event-loop turn or per flush (admits, settles, usage records) is
// counted at its low-rate cost per request. The gateways run one after another.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { createTeamAndKey } from './lib/admin.mjs';
import { freePorts, GATEWAY_ENV, ServerProcess, stopAll } from './lib/procs.mjs';
import { redisCommand, startRedis } from './lib/redis.mjs';
import { CHAT_BODY, MODEL, mockGatewayConfig, QUOTA_KEY, QUOTA_TEAM } from './lib/workload.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADMIN_KEY = 'bench-admin-key-0123456789';
/**
 * V8 moves the hot functions of a request from Maglev to TurboFan only after ~10,500 requests of
 * the bench's chat completion (`node --trace-opt`: the tier-up needs 3,000 invocations' worth of
 * budget, spent slowly by Maglev code); counted before that, a request runs a mix of the two
 * tiers and its compilations, not what a gateway that has been up a while runs.
 */
const warmup = Number(process.env.BENCH_INSTR_WARMUP ?? 30000);
const measured = Number(process.env.BENCH_INSTR_REQUESTS ?? 1000);
const stream = process.env.BENCH_INSTR_STREAM === '1';
const store = process.env.BENCH_INSTR_STORE ?? 'embedded';
if (store !== 'embedded' && store !== 'redis') throw new Error('BENCH_INSTR_STORE: embedded or redis');
/**
 * V8 flags for every target. `--predictable` runs V8's compilers and GC on the main thread, in
 * an order that does not depend on timing: without it the same build counted 548k to 630k
 * instructions per request from run to run; with it, the same figure twice.
 */
const nodeFlags = (process.env.BENCH_INSTR_NODE_FLAGS ?? '--predictable').split(/\s+/).filter(Boolean);

const REPO_ROOT = path.resolve(HERE, '..');
const REFERENCE_KEY = 'sk-reference-0123456789';
const targets = process.argv.slice(2);
if (targets.length === 0) {
  process.stderr.write('usage: node bench/instructions.mjs <floor | reference | checkout> ...\n');
  process.exit(2);
}
try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  throw new Error('valgrind not found (Debian: apt-get install valgrind)');
}

const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-instructions-'));
const [mockPort, gatewayPort, redisPort] = await freePorts(3);
const mock = new ServerProcess('mock', process.execPath, [path.join(HERE, 'mock-upstream.mjs')], {
  cwd: HERE,
  env: { ...process.env, PORT: String(mockPort) },
  stdout: 'ignore',
});
await mock.waitReady(`http://127.0.0.1:${mockPort}/healthz`, 10_000);

if (store === 'redis') await startRedis(redisPort, { cwd: HERE, env: process.env });

const body = stream ? JSON.stringify({ ...JSON.parse(CHAT_BODY), stream: true }) : CHAT_BODY;

/**
 * @param {string} origin
 * @param {string} key
 * @param {number} count
 */
async function send(origin, key, count) {
  const agent = new Agent({ connections: 1 });
  try {
    for (let i = 0; i < count; i++) {
      const response = await request(`${origin}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body,
      });
      await response.body.text();
      if (response.statusCode !== 200) throw new Error(`request ${i}: status ${response.statusCode}`);
    }
  } finally {
    await agent.close();
  }
}

/**
 * Runs `callgrind_control <what> <pid>`. Valgrind takes such a command only while the process
 * runs code, and an idle proxy (the floor has no timers) runs none: requests are sent, one at a
 * time, until the command is done. Returns how many were sent; a request in progress when the
 * command takes effect is counted on whichever side of it its code ran.
 * It needs the target's environment: Valgrind names the pipe it listens on after USER and HOST.
 * @param {'--instr=on' | '--zero' | '--dump'} what
 * @param {number} pid
 * @param {NodeJS.ProcessEnv} env
 * @param {() => Promise<void>} nudge
 */
async function control(what, pid, env, nudge) {
  const child = spawn('callgrind_control', [what, String(pid)], { env, stdio: 'ignore' });
  let done = false;
  const exited = new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      done = true;
      if (code === 0) resolve(undefined);
      else reject(new Error(`callgrind_control ${what} exited with ${code}`));
    });
  });
  let sent = 0;
  while (!done) {
    await nudge();
    sent++;
  }
  await exited;
  return sent;
}

/**
 * Work that is not the request's own, each as where it is entered and what runs inside it.
 * - V8's optimizing compilers (TurboFan, Maglev): entered on the main thread when V8 runs them
 *   there (`--predictable` does: CompileOptimized), on its worker threads otherwise (the jobs'
 *   ExecuteJob), and where the main thread installs finished jobs (FinalizeJob). Even after
 *   30,000 requests every target still compiles now and then, so some of this is in every count.
 * - The garbage collector: collections, incremental and concurrent marking, sweeping (also
 *   where allocation helps it). Under Valgrind a process runs ~50x slower, and V8's memory
 *   reducer, which starts full collections when the allocation rate looks low, runs them far
 *   more often per request than at full speed: the floor proxy counted 0.5k and 242k
 *   instructions of GC per request in two runs; at full speed it makes one full collection per
 *   ~5,000 requests.
 * A call into an entry is counted with everything it calls, unless its caller is an entry or
 * inside one (so a GC during a compilation is the compiler's). Callgrind keeps one cost per caller
 * and callee, not whole stacks, so a function that both the request's code and the collector call
 * cannot be split: sweeping that an allocation does on the collector's behalf is counted as the
 * request's (its entry, ContributeToSweeping, is also reached from the scavenger through the same
 * allocation functions, and counting it as GC counted it twice).
 */
const SIDE_WORK = {
  compiling:
    /v8::internal::(Compiler::CompileOptimized(OSR)?|OptimizedCompilationJob::(ExecuteJob|FinalizeJob)|OptimizingCompileDispatcher::InstallOptimizedFunctions)\(/,
  gc: /v8::internal::(Heap::(CollectGarbage|CollectAllGarbage|CollectAllAvailableGarbage|FinalizeIncrementalMarkingAtomically|StartIncrementalMarking)|IncrementalMarking::|IncrementalMarkingJob::|ConcurrentMarking::|ScavengerCollector::|ScavengeJob::|Sweeper::|ArrayBufferSweeper::|MemoryReducer::|MinorGCJob::|MarkCompactCollector::|MinorMarkSweepCollector::)/,
};
const INSIDE_SIDE_WORK =
  /v8::internal::(compiler::|maglev::|Compiler::|[A-Za-z]*CompilationJob|OptimizingCompileDispatcher|[A-Za-z:]*CompileOptimized|[A-Za-z:]*Compile(Turbofan|Maglev)|Heap::|IncrementalMarking|ConcurrentMarking|Scaveng|Sweeper|MarkCompact|MinorMarkSweep|ArrayBufferSweeper|MemoryReducer|MinorGCJob|GCTracer|ParallelClearingJob|MarkingVisitorBase|\(anonymous namespace\)::GetOrCompileOptimized)|heap::base::|cppgc::|PushAllRegistersAndIterateStack|v8::platform::DefaultJobState::Join/;

/**
 * The instructions of one callgrind dump, and how many of them were compiling and collecting
 * garbage (SIDE_WORK). Names are compressed in the file: `fn=(id) name` the first time,
 * `fn=(id)` after.
 * @param {string} text
 */
function countDump(text) {
  // `totals:` is the sum of the cost lines the split is taken from (`summary:` can differ a little).
  const summary = text.match(/^totals:\s+(\d+)/m) ?? text.match(/^summary:\s+(\d+)/m);
  if (!summary) return undefined;
  /** @type {Map<string, string>} */
  const names = new Map();
  /** @param {string} spec */
  const nameOf = (spec) => {
    const match = spec.match(/^\((\d+)\)(?: (.*))?$/);
    if (!match) return spec;
    const [, id = '', name] = match;
    if (name !== undefined) names.set(id, name);
    return names.get(id) ?? '';
  };
  let fn = '';
  let callee = '';
  let inCall = false;
  let compiling = 0;
  let gc = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) fn = nameOf(line.slice(3));
    else if (line.startsWith('cfn=')) callee = nameOf(line.slice(4));
    else if (line.startsWith('calls=')) inCall = true;
    else if (inCall && /^[\d+*-]/.test(line)) {
      inCall = false;
      if (INSIDE_SIDE_WORK.test(fn) || SIDE_WORK.compiling.test(fn) || SIDE_WORK.gc.test(fn)) continue;
      // One event (Ir) per line: the cost is the last field, whatever the position columns.
      const cost = Number(line.trim().split(/\s+/).at(-1) ?? 0);
      if (SIDE_WORK.compiling.test(callee)) compiling += cost;
      else if (SIDE_WORK.gc.test(callee)) gc += cost;
    }
  }
  return { total: Number(summary[1]), compiling, gc };
}

/**
 * The dumps of one process: files named after its pid with a sequence number, each with a
 * `summary:` line of the instructions since the counters were last zeroed.
 * @param {string} outPrefix
 */
function dumpedInstructions(outPrefix) {
  const dir = path.dirname(outPrefix);
  const base = path.basename(outPrefix);
  const sums = { total: 0, compiling: 0, gc: 0 };
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${base}.`) || !/\.\d+(-\d+)?$/.test(name)) continue;
    const counted = countDump(readFileSync(path.join(dir, name), 'utf8'));
    if (!counted) continue;
    sums.total += counted.total;
    sums.compiling += counted.compiling;
    sums.gc += counted.gc;
  }
  return sums;
}

/**
 * How to start a target: its node arguments, folder and environment, and how its key is made.
 * @param {string} target
 * @param {number} i
 */
function launchSpec(target, i) {
  const env = { ...process.env, ...GATEWAY_ENV, LOG_LEVEL: 'info', NODE_ENV: 'production' };
  delete env.LOG_PRETTY;
  delete env.LOG_REQUESTS;
  const upstream = `http://127.0.0.1:${mockPort}`;
  if (target === 'floor' || target === 'reference') {
    return {
      cwd: REPO_ROOT,
      args: [path.join('bench', target === 'floor' ? 'floor-proxy.mjs' : 'reference-gateway.mjs')],
      env: { ...env, HOST: '127.0.0.1', PORT: String(gatewayPort), UPSTREAM_URL: upstream, REFERENCE_KEY },
      key: async () => REFERENCE_KEY,
    };
  }
  const config = path.join(work, `gateway-${i}.yaml`);
  writeFileSync(
    config,
    mockGatewayConfig({
      port: gatewayPort,
      upstreamOrigin: upstream,
      adminKey: ADMIN_KEY,
      dataDir: path.join(work, `data-${i}`),
      extra:
        store === 'redis'
          ? [
              `redis: { url: "redis://127.0.0.1:${redisPort}" }`,
              `quota: { prices: { ${MODEL}: { input: 1, output: 2 } } }`,
            ]
          : [],
    }),
  );
  return {
    cwd: path.resolve(target),
    args: ['--max-semi-space-size=16', 'dist/server.js', '--config', config],
    env,
    /** @param {string} origin */
    key: async (origin) =>
      store === 'redis'
        ? (await createTeamAndKey(origin, ADMIN_KEY, QUOTA_TEAM, QUOTA_KEY)).key
        : (await createTeamAndKey(origin, ADMIN_KEY, { name: `instr-${i}` }, { name: `instr-${i}` })).key,
  };
}

const results = [];
try {
  for (const [i, target] of targets.entries()) {
    const spec = launchSpec(target, i);
    // Each gateway starts from an empty Redis: its own team, key and counters only.
    if (store === 'redis') await redisCommand(redisPort, ['FLUSHALL']);
    const outPrefix = path.join(work, `callgrind-${i}`);
    const server = new ServerProcess(
      target,
      'valgrind',
      [
        '--tool=callgrind',
        `--callgrind-out-file=${outPrefix}.%p`,
        '--separate-threads=no',
        // The warm-up runs uninstrumented (~4-5x faster); counting starts after it.
        '--instr-atstart=no',
        process.execPath,
        ...nodeFlags,
        ...spec.args,
      ],
      { cwd: spec.cwd, env: spec.env, stdout: openSync(path.join(work, `target-${i}.log`), 'w') },
    );
    const origin = `http://127.0.0.1:${gatewayPort}`;
    await server.waitReady(`${origin}/healthz`, 300_000);
    const key = await spec.key(origin);
    const nudge = () => send(origin, key, 1);
    await send(origin, key, warmup);
    await control('--instr=on', server.pid, spec.env, nudge);
    await control('--zero', server.pid, spec.env, nudge);
    await send(origin, key, measured);
    const requests = measured + (await control('--dump', server.pid, spec.env, nudge));
    const { total, compiling, gc } = dumpedInstructions(`${outPrefix}.${server.pid}`);
    if (total === 0) throw new Error(`${target}: callgrind wrote no dump`);
    const k = (count) => `${(count / requests / 1000).toFixed(1)}k`;
    const own = total - compiling - gc;
    results.push({
      target,
      requests,
      instructions: total,
      compiling,
      gc,
      perRequest: total / requests,
      ownPerRequest: own / requests,
      compilingPerRequest: compiling / requests,
      gcPerRequest: gc / requests,
    });
    process.stdout.write(
      `${target}: ${k(own)} instructions per request of its own work ` +
        `(${k(total)} in all: compiling ${k(compiling)}, garbage collection ${k(gc)})\n`,
    );
    await server.stop(30_000);
  }
} finally {
  await stopAll(2_000);
}
const out = path.join(HERE, 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, 'instructions.json'),
  `${JSON.stringify({ stream, store, warmup, measured, results }, null, 2)}\n`,
);
process.stdout.write(`callgrind dumps and the targets' output: ${work}\n`);
