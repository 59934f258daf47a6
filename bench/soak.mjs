// Memory over a long run at a fixed rate: `npm run build && node bench/soak.mjs`.
// One mock upstream, one gateway (dist/server.js, embedded store, a team key with limits and
// budgets, so every stage that keeps state per request runs), and an open-loop client sending
// SOAK_RATE requests a second for SOAK_MINUTES. The gateway's RSS is read every
// SOAK_SAMPLE_SEC from /proc; the curve goes to stdout and bench/results/soak.md.
//
// Env: SOAK_MINUTES (10), SOAK_RATE (500), SOAK_SAMPLE_SEC (30).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createTeamAndKey } from './lib/admin.mjs';
import { freePorts, GATEWAY_ENV, readMemory, runInChild, ServerProcess, stopAll } from './lib/procs.mjs';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./lib/loadgen.mjs', import.meta.url));
const HOST = '127.0.0.1';
const minutes = Number(process.env.SOAK_MINUTES ?? 10);
const rate = Number(process.env.SOAK_RATE ?? 500);
const sampleSec = Number(process.env.SOAK_SAMPLE_SEC ?? 30);
const ADMIN_KEY = 'soak-admin-key-0123456789abcdef';

const [mockPort, gatewayPort] = await freePorts(2);
const work = mkdtempSync(join(tmpdir(), 'tollgate-soak-'));
const configPath = join(work, 'tollgate.yaml');
writeFileSync(
  configPath,
  [
    `server: { host: ${HOST}, port: ${gatewayPort} }`,
    'auth: {}',
    `admin: { key: ${ADMIN_KEY} }`,
    `dataDir: ${work}`,
    'log: { level: warn }',
    `backends: { up: { type: openai, baseUrl: "http://${HOST}:${mockPort}/v1", apiKey: k } }`,
    'models: { bench-model: { backend: up } }',
    '',
  ].join('\n'),
);
const env = { ...process.env, NODE_ENV: 'production' };
const mock = new ServerProcess('mock upstream', process.execPath, ['bench/mock-upstream.mjs'], {
  cwd: REPO_ROOT,
  stdout: 'ignore',
  env: { ...env, HOST, PORT: String(mockPort) },
});
const gateway = new ServerProcess(
  'tollgate',
  process.execPath,
  ['--max-semi-space-size=16', 'dist/server.js', '--config', configPath],
  {
    cwd: REPO_ROOT,
    stdout: 'ignore',
    env: { ...env, ...GATEWAY_ENV },
  },
);
const rows = [];
try {
  await mock.waitReady(`http://${HOST}:${mockPort}/healthz`, 10_000);
  await gateway.waitReady(`http://${HOST}:${gatewayPort}/healthz`, 20_000);
  const key = await createTeamAndKey(
    `http://${HOST}:${gatewayPort}`,
    ADMIN_KEY,
    {
      name: 'soak',
      limits: { requests_per_minute: 1_000_000, tokens_per_minute: 1_000_000_000, max_concurrent: 1_000 },
      budgets: [
        { period: 'day', max_tokens: 1_000_000_000_000 },
        { period: 'month', max_usd: 1_000_000 },
      ],
    },
    { limits: { requests_per_minute: 1_000_000 } },
  );
  const sample = (label) => {
    const memory = readMemory(gateway.pid);
    rows.push({ label, rssMb: memory ? memory.rssKb / 1024 : Number.NaN });
    process.stderr.write(`soak: ${label} RSS ${rows.at(-1).rssMb.toFixed(1)} MB\n`);
  };
  sample('idle');
  const started = Date.now();
  const sampler = setInterval(
    () => sample(`${Math.round((Date.now() - started) / 1000)} s`),
    sampleSec * 1000,
  );
  const result = await runInChild(
    LOADGEN,
    {
      kind: 'paced',
      origin: `http://${HOST}:${gatewayPort}`,
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key.key}` },
      body: JSON.stringify({
        model: 'bench-model',
        messages: [{ role: 'user', content: 'Say hello in one short sentence.' }],
      }),
      rate,
      durationSec: minutes * 60,
      warmupSec: 0,
    },
    (minutes * 60 + 120) * 1000,
  );
  clearInterval(sampler);
  sample('end of load');
  await sleep(sampleSec * 1000);
  sample(`${sampleSec} s after`);
  const lines = [
    `# Soak: ${minutes} min at ${rate} req/s (team key, limits, two budgets, embedded store)`,
    '',
    `Requests: ${result.ok} answered 2xx, ${result.non2xx} other statuses, ${result.errors} errors; ` +
      `${result.reqPerSec.toFixed(0)} req/s; latency p50 ${result.latencyMs.p50?.toFixed(2)} ms, ` +
      `p99 ${result.latencyMs.p99?.toFixed(2)} ms.`,
    '',
    '| when | gateway RSS (MB) |',
    '| --- | ---: |',
    ...rows.map((row) => `| ${row.label} | ${row.rssMb.toFixed(1)} |`),
    '',
  ];
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench', 'results', 'soak.md'), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
} finally {
  await stopAll(5_000);
}
