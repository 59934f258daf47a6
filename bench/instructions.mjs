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
// Each target runs under `valgrind --tool=callgrind` (~50x slower) in front of the bench's mock;
// a checkout's gateway on the embedded store with a team key without limits. All its threads are
// counted. One keep-alive client sends BENCH_INSTR_WARMUP (2,000) chat completions, the counters
// are zeroed, it sends BENCH_INSTR_REQUESTS (1,000) more, and the counters are dumped:
// instructions over requests.
// BENCH_INSTR_STREAM=1 sends streamed requests instead. The gateways run one after another.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { createTeamAndKey } from './lib/admin.mjs';
import { freePorts, GATEWAY_ENV, ServerProcess, stopAll } from './lib/procs.mjs';
import { CHAT_BODY, mockGatewayConfig } from './lib/workload.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADMIN_KEY = 'bench-admin-key-0123456789';
const warmup = Number(process.env.BENCH_INSTR_WARMUP ?? 2000);
const measured = Number(process.env.BENCH_INSTR_REQUESTS ?? 1000);
const stream = process.env.BENCH_INSTR_STREAM === '1';
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
const [mockPort, gatewayPort] = await freePorts(2);
const mock = new ServerProcess('mock', process.execPath, [path.join(HERE, 'mock-upstream.mjs')], {
  cwd: HERE,
  env: { ...process.env, PORT: String(mockPort) },
  stdout: 'ignore',
});
await mock.waitReady(`http://127.0.0.1:${mockPort}/healthz`, 10_000);

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
 * @param {'--zero' | '--dump'} what
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

/** V8's optimizing compilers (TurboFan, Maglev), counted inclusively wherever they ran. */
const COMPILE_ENTRY =
  /^\s*([\d,]+) .*v8::internal::(OptimizedCompilationJob::ExecuteJob|OptimizedCompilationJob::FinalizeJob)\(/;

/**
 * The dumps of one process: files named after its pid with a sequence number, each with a
 * `summary:` line of the instructions since the counters were last zeroed, and how many of them
 * V8's optimizing compilers ran (from callgrind_annotate's inclusive costs). A gateway still
 * tiers code up thousands of requests in (`node --trace-opt`): that work fades with time, the
 * rest is what every request costs.
 * @param {string} outPrefix
 */
function dumpedInstructions(outPrefix) {
  const dir = path.dirname(outPrefix);
  const base = path.basename(outPrefix);
  let total = 0;
  let compiling = 0;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${base}.`) || !/\.\d+(-\d+)?$/.test(name)) continue;
    const file = path.join(dir, name);
    const summary = readFileSync(file, 'utf8').match(/^summary:\s+(\d+)/m);
    if (!summary) continue;
    total += Number(summary[1]);
    const annotated = execFileSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    for (const line of annotated.split('\n')) {
      const match = line.match(COMPILE_ENTRY);
      if (match?.[1]) compiling += Number(match[1].replaceAll(',', ''));
    }
  }
  return { total, compiling };
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
    }),
  );
  return {
    cwd: path.resolve(target),
    args: ['--max-semi-space-size=16', 'dist/server.js', '--config', config],
    env,
    /** @param {string} origin */
    key: async (origin) =>
      (await createTeamAndKey(origin, ADMIN_KEY, { name: `instr-${i}` }, { name: `instr-${i}` })).key,
  };
}

const results = [];
try {
  for (const [i, target] of targets.entries()) {
    const spec = launchSpec(target, i);
    const outPrefix = path.join(work, `callgrind-${i}`);
    const server = new ServerProcess(
      target,
      'valgrind',
      [
        '--tool=callgrind',
        `--callgrind-out-file=${outPrefix}.%p`,
        '--separate-threads=no',
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
    await control('--zero', server.pid, spec.env, nudge);
    await send(origin, key, measured);
    const requests = measured + (await control('--dump', server.pid, spec.env, nudge));
    const { total, compiling } = dumpedInstructions(`${outPrefix}.${server.pid}`);
    if (total === 0) throw new Error(`${target}: callgrind wrote no dump`);
    const perRequest = total / requests;
    const compilingPerRequest = compiling / requests;
    results.push({ target, instructions: total, compiling, requests, perRequest, compilingPerRequest });
    process.stdout.write(
      `${target}: ${(perRequest / 1000).toFixed(1)} k instructions per request, ` +
        `${((perRequest - compilingPerRequest) / 1000).toFixed(1)} k without V8's optimizing compilers\n`,
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
  `${JSON.stringify({ stream, warmup, measured, results }, null, 2)}\n`,
);
