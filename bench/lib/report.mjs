// Turns the raw figures of one run into the markdown report: absolute numbers first, then the
// ratios and deltas against direct (no hop) and against the floor (cheapest Node hop), then the
// PASS/MISS verdict for each target.
import { routingSection, routingVerdicts } from './routing-report.mjs';
import { median, summarize } from './stats.mjs';

/** @typedef {import('../run.mjs').TargetKey} TargetKey */
/** @typedef {import('../run.mjs').MeasuredRequests} MeasuredRequests */
/** @typedef {import('../run.mjs').MeasuredStreams} MeasuredStreams */
/** @typedef {import('../run.mjs').Settings} Settings */
/** @typedef {import('../run.mjs').Machine} Machine */
/** @typedef {import('../run.mjs').MemoryTimeline} MemoryTimeline */
/**
 * @typedef {object} ReportInput
 * @property {Settings} settings
 * @property {Machine & { loadAverageAtEnd: number[] }} machine
 * @property {Date} startedAt
 * @property {Date} finishedAt
 * @property {{ commandLine: string, overridden: boolean, logLevel: string, logRequests: string, logDestination: string,
 *   logStats: { lines: number, bytes: number } | null, configSource: string }} gateway
 * @property {Array<{ key: TargetKey, label: string }>} targets
 * @property {string[]} sanityNotes
 * @property {Record<TargetKey, MeasuredRequests[]>} maxRuns
 * @property {Array<{ rate: number, runs: Record<TargetKey, MeasuredRequests[]> }>} rateRuns
 * @property {Record<TargetKey, MeasuredStreams[]>} streamRuns
 * @property {Record<'floor' | 'tollgate', MemoryTimeline>} memory
 * @property {import('../run.mjs').QuotaSection} [quota] section 6 (auth + quota + usage on Redis)
 * @property {import('../run.mjs').CacheSection} [cache] section 7 (cache hits)
 * @property {import('./routing-report.mjs').RoutingSection} [routing] section 8 (three deployments vs one)
 * @property {{ limitCores: number, waitedSec: number, repeats: number, events: string[] }} noise
 */

// The targets from the brief. Kept here, next to the code that evaluates them.
const TARGETS = {
  maxRpsShareOfFloor: 0.8,
  addedP50OverFloorMs: 0.2,
  p99AtRateMs: 3,
  latencyRate: 500,
  ttfcOverFloorMs: 0.5,
  // Section 6 (the issue): auth + quota + usage on Redis, together, over the bare proxy (floor).
  redisAddedP50OverFloorMs: 1,
  // Section 7 (the issue): a cache hit's p50 at 1,000 req/s (1 KB answer), for each store.
  cacheHitP50Ms: 1,
  cacheHitRate: 1000,
  // Performance issue: ratios to the bare proxy (floor) in the same run.
  redisMaxRpsShareOfFloor: 0.6,
  redisCpuPerRequestOverFloor: 2,
  redisP99OverFloor: 2,
  redisCommandsPerRequest: 12,
  embeddedCpuPerRequestOverFloor: 1.5,
  idleRssMb: 100,
  loadRssOverFloorMb: 50,
};

// ---------- formatting ----------

/** @param {number} value */
function ms(value) {
  if (!Number.isFinite(value)) return '–';
  const size = Math.abs(value);
  return value.toFixed(size < 1 ? 3 : size < 100 ? 2 : 1);
}
/** @param {number} value */
const signedMs = (value) => (Number.isFinite(value) ? `${value < 0 ? '−' : '+'}${ms(Math.abs(value))}` : '–');
/** @param {number} value */
const int = (value) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');
/** @param {number} value */
const pct = (value) => (Number.isFinite(value) ? `${(value * 100).toFixed(0)} %` : '–');
/** @param {number} kb */
const mb = (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : '–');
/** @param {number} value */
const cores = (value) => (Number.isFinite(value) ? value.toFixed(2) : '–');

/**
 * @param {readonly string[]} headers
 * @param {ReadonlyArray<readonly string[]>} rows
 * @param {string} [align] one letter per column: l or r (default: first l, rest r)
 */
function table(headers, rows, align) {
  const alignment = headers.map((_, index) =>
    (align?.[index] ?? (index === 0 ? 'l' : 'r')) === 'l' ? ':---' : '---:',
  );
  return [
    `| ${headers.join(' | ')} |`,
    `| ${alignment.join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
  ].join('\n');
}

// ---------- aggregation ----------

/**
 * @template T
 * @param {readonly T[]} runs
 * @param {(run: T) => number} pick
 */
const medianOf = (runs, pick) => median(runs.map(pick));
/**
 * @template T
 * @param {readonly T[]} runs
 * @param {(run: T) => number} pick
 */
function spread(runs, pick, format = int) {
  const values = runs.map(pick).filter(Number.isFinite);
  if (values.length < 2) return '–';
  return `${format(Math.min(...values))}–${format(Math.max(...values))}`;
}
/** @param {MeasuredRequests} run */
const proxyCpuPerRequestUs = (run) => (run.serverCpu.proxyMs * 1000) / run.completedTotal;
/** @param {MeasuredRequests} run */
const mockCpuPerRequestUs = (run) => (run.serverCpu.mockMs * 1000) / run.completedTotal;
/** @param {MeasuredRequests} run */
const loadgenCores = (run) => (run.loadgenCpu.userMs + run.loadgenCpu.systemMs) / (run.durationSec * 1000);
/** @param {MeasuredRequests} run */
const mockCores = (run) => run.serverCpu.mockMs / run.serverCpu.wallMs;
/** @param {MeasuredRequests} run */
const proxyCores = (run) => run.serverCpu.proxyMs / run.serverCpu.wallMs;
/**
 * The load generator's own longest pause (event loop held, its GC included) and longest GC
 * pause, medians of the rounds: a p99 of the same order measures the client as much as the proxy.
 */
const LOADGEN_STALLS_HEADER = 'loadgen stall / GC max';
/** @param {readonly MeasuredRequests[]} runs */
function clientStallsCell(runs) {
  const measured = runs.filter((run) => run.clientStalls !== undefined);
  if (measured.length === 0) return '–';
  return `${ms(medianOf(measured, (run) => run.clientStalls?.loopDelayMaxMs ?? Number.NaN))} / ${ms(medianOf(measured, (run) => run.clientStalls?.gcMaxMs ?? Number.NaN))}`;
}
/** @param {readonly MeasuredRequests[]} runs */
const failures = (runs) => runs.reduce((sum, run) => sum + run.errors + run.non2xx, 0);

/**
 * @param {readonly MeasuredStreams[]} runs
 * @param {'sequential' | 'concurrent'} kind
 */
function pooledStreams(runs, kind) {
  return {
    ttfc: summarize(runs.flatMap((run) => run[kind].ttfcMs)),
    total: summarize(runs.flatMap((run) => run[kind].totalMs)),
  };
}

/**
 * @param {ReportInput} input
 * @returns {Array<MeasuredRequests | MeasuredStreams>}
 */
const allRuns = (input) => [
  ...Object.values(input.maxRuns).flat(),
  ...input.rateRuns.flatMap((entry) => Object.values(entry.runs).flat()),
  ...Object.values(input.streamRuns).flat(),
];

// ---------- sections ----------

/** @param {ReportInput} input */
function machineSection(input) {
  const { machine, settings, gateway } = input;
  const minutes = (input.finishedAt.getTime() - input.startedAt.getTime()) / 60_000;
  const load = (/** @type {number[]} */ values) => values.map((value) => value.toFixed(2)).join(' / ');
  const rows = [
    ['CPU', `${machine.cpuModel}, ${machine.logicalCores} logical cores (all processes share them)`],
    ['Memory', `${machine.memoryGiB.toFixed(1)} GiB`],
    ['OS', machine.kernel],
    ['Node', machine.node],
    ['Commit', machine.commit],
    [
      'Date',
      `${input.startedAt.toISOString()} (run took ${minutes.toFixed(1)} min${settings.quick ? ', BENCH_QUICK' : ''})`,
    ],
    [
      'Load average 1/5/15 min, start → end',
      `${load(machine.loadAverageAtStart)} → ${load(machine.loadAverageAtEnd)}`,
    ],
    [
      'Gateway',
      `\`${gateway.commandLine}\`${gateway.overridden ? ' (**BENCH_GATEWAY_CMD override: not the real gateway**)' : ''}`,
    ],
    ['Gateway config', gateway.configSource],
    [
      'Gateway log level',
      `${gateway.logLevel}, request lines: ${gateway.logRequests} (stdout to ${gateway.logDestination})`,
    ],
  ];
  if (gateway.logStats !== null) {
    rows.push([
      'Gateway log volume',
      `${int(gateway.logStats.lines)} lines, ${mb(gateway.logStats.bytes / 1024)} over the whole run`,
    ]);
  }
  const foreign = allRuns(input).map((run) => run.foreignCores);
  rows.push([
    'Other processes during measurements',
    `median ${cores(median(foreign))}, max ${cores(Math.max(...foreign))} cores (limit ${cores(input.noise.limitCores)}); ` +
      `waited ${input.noise.waitedSec.toFixed(0)} s for a quiet machine, repeated ${input.noise.repeats} noisy measurement(s)`,
  ]);
  return `## Machine and run\n\n${table(['', ''], rows, 'll')}`;
}

/** @param {ReportInput} input */
function methodSection(input) {
  const s = input.settings;
  const rateMethod =
    s.rateClient === 'paced'
      ? 'an open-loop client (bench/lib/loadgen.mjs) sends requests on a fixed schedule (checked every ' +
        'millisecond, so 500 req/s is one request every 2 ms) whatever the responses do; latency runs ' +
        'from handing the request to the connection pool to the last byte of the response; "loadgen ' +
        'send lag" is how late requests left compared with the schedule (the client shares the cores too)'
      : "autocannon's `overallRate` with " +
        `${s.connections} connections (note: it sends each connection's per-second quota back to back at ` +
        'every 1 s tick, so the load arrives in bursts)';
  return [
    '## Method',
    '',
    '- Three targets answer the same mock upstream (bench/mock-upstream.mjs, its own process): **direct** ' +
      '(client → mock), **floor** (client → bench/floor-proxy.mjs → mock: node:http + undici Pool, no ' +
      'parsing, the least any Node proxy hop costs here) and **tollgate** (client → gateway → mock).',
    '- Every measurement runs in a freshly forked load-generator process; servers never share an event ' +
      'loop with the client. Targets alternate within each round and the order rotates every round; ' +
      `${s.rounds} round(s), tables show the median of the rounds (streaming percentiles pool the samples ` +
      'of all rounds).',
    `- Warm-up before round 1: ${s.warmupSec} s of closed-loop load plus 50 streams per target.`,
    `- Max throughput: autocannon, ${s.connections} connections, pipelining 1, ${s.durationSec} s, ` +
      'non-stream chat completion (~1 KB response). Latencies are taken per response as float ms ' +
      "(autocannon's own histogram only keeps whole milliseconds).",
    `- Fixed rates (${s.rates.join(', ')} req/s, ${s.durationSec} s each` +
      `${s.rateClient === 'paced' ? ` after ${s.rateWarmupSec} s at the rate` : ''}): ${rateMethod}.`,
    `- Streaming: the mock sends ${s.streamChunks} chunks ${s.streamDelayMs} ms apart (first one at ` +
      'once, so time to first chunk measures the hops, not a simulated prefill). Per target and round: ' +
      `${s.streamsSequential} sequential streams, then ${s.streamsConcurrent} streams ` +
      `${s.streamConcurrency} at a time. TTFC = request sent → first \`data:\` bytes; total = → end of body.`,
    '- CPU per request comes from /proc/<pid>/stat of each server over a whole measurement (warm-up ' +
      'requests of a fixed-rate run included in the count); "cores" is CPU time over wall time. The ' +
      'load generator competes for the same 2 cores, which is why its share is shown.',
    '- Gateway memory is VmRSS from /proc/<pid>/status, sampled every 250 ms while the gateway is the ' +
      'target.',
    '',
  ].join('\n');
}

/**
 * @param {ReportInput} input
 * @param {TargetKey} key
 */
const labelOf = (input, key) => input.targets.find((target) => target.key === key)?.label ?? key;

/** @param {ReportInput} input */
function maxSection(input) {
  const direct = medianOf(input.maxRuns.direct, (run) => run.reqPerSec);
  const floor = medianOf(input.maxRuns.floor, (run) => run.reqPerSec);
  const rows = input.targets.map(({ key, label }) => {
    const runs = input.maxRuns[key];
    const rps = medianOf(runs, (run) => run.reqPerSec);
    return [
      `**${label}**${failures(runs) > 0 ? ' ⚠' : ''}`,
      int(rps),
      spread(runs, (run) => run.reqPerSec),
      key === 'direct' ? '–' : pct(rps / direct),
      key === 'floor' || key === 'direct' ? '–' : pct(rps / floor),
      ms(medianOf(runs, (run) => run.latencyMs.p50)),
      ms(medianOf(runs, (run) => run.latencyMs.p99)),
      key === 'direct' ? '–' : int(medianOf(runs, proxyCpuPerRequestUs)),
      int(medianOf(runs, mockCpuPerRequestUs)),
      `${cores(medianOf(runs, loadgenCores))} / ${cores(medianOf(runs, mockCores))} / ${key === 'direct' ? '–' : cores(medianOf(runs, proxyCores))}`,
    ];
  });
  return [
    `## 1. Max throughput, non-stream (${input.settings.connections} connections)`,
    '',
    table(
      [
        'target',
        'req/s',
        'rounds min–max',
        'vs direct',
        'vs floor',
        'p50 ms',
        'p99 ms',
        'proxy CPU µs/req',
        'mock CPU µs/req',
        'cores: loadgen / mock / proxy',
      ],
      rows,
    ),
  ].join('\n');
}

/** @param {ReportInput} input */
function rateSections(input) {
  return input.rateRuns
    .map(({ rate, runs }) => {
      const p50 = (/** @type {TargetKey} */ key) => medianOf(runs[key], (run) => run.latencyMs.p50);
      const p99 = (/** @type {TargetKey} */ key) => medianOf(runs[key], (run) => run.latencyMs.p99);
      const rows = input.targets.map(({ key, label }) => {
        const achieved = medianOf(runs[key], (run) => run.reqPerSec);
        const saturated = achieved < rate * 0.97;
        return [
          `**${label}**${failures(runs[key]) > 0 ? ' ⚠' : ''}`,
          `${int(achieved)}${saturated ? ' (saturated)' : ''}`,
          ms(p50(key)),
          ms(medianOf(runs[key], (run) => run.latencyMs.p90)),
          ms(p99(key)),
          ms(medianOf(runs[key], (run) => run.latencyMs.max)),
          key === 'direct' ? '–' : signedMs(p50(key) - p50('direct')),
          key === 'direct' ? '–' : signedMs(p99(key) - p99('direct')),
          key === 'tollgate' ? signedMs(p50(key) - p50('floor')) : '–',
          key === 'tollgate' ? signedMs(p99(key) - p99('floor')) : '–',
          key === 'direct' ? '–' : int(medianOf(runs[key], proxyCpuPerRequestUs)),
          ms(medianOf(runs[key], (run) => run.sendLagMs?.p99 ?? Number.NaN)),
          clientStallsCell(runs[key]),
        ];
      });
      return [
        `## 2. Latency at ${int(rate)} req/s (non-stream, ms)`,
        '',
        table(
          [
            'target',
            'achieved req/s',
            'p50',
            'p90',
            'p99',
            'max',
            'added p50 vs direct',
            'added p99 vs direct',
            'p50 vs floor',
            'p99 vs floor',
            'proxy CPU µs/req',
            'loadgen send lag p99',
            LOADGEN_STALLS_HEADER,
          ],
          rows,
        ),
      ].join('\n');
    })
    .join('\n');
}

/** @param {ReportInput} input */
function streamSection(input) {
  const s = input.settings;
  /** @param {'sequential' | 'concurrent'} kind */
  const rowsFor = (kind) => {
    const base = {
      direct: pooledStreams(input.streamRuns.direct, kind),
      floor: pooledStreams(input.streamRuns.floor, kind),
    };
    return input.targets.map(({ key, label }) => {
      const runs = input.streamRuns[key];
      const stats = pooledStreams(runs, kind);
      const problems = runs.reduce((sum, run) => sum + run.errors + run.missingDone + run.usageChunks, 0);
      const events = `${Math.min(...runs.map((run) => run.minEvents))}–${Math.max(...runs.map((run) => run.maxEvents))}`;
      return [
        `**${label}**${problems > 0 ? ' ⚠' : ''}`,
        String(stats.ttfc.count),
        ms(stats.ttfc.p50),
        ms(stats.ttfc.p99),
        ms(stats.total.p50),
        ms(stats.total.p99),
        key === 'direct' ? '–' : signedMs(stats.ttfc.p50 - base.direct.ttfc.p50),
        key === 'tollgate' ? signedMs(stats.ttfc.p50 - base.floor.ttfc.p50) : '–',
        key === 'tollgate' ? signedMs(stats.total.p50 - base.floor.total.p50) : '–',
        events,
      ];
    });
  };
  const headers = [
    'target',
    'streams',
    'TTFC p50',
    'TTFC p99',
    'total p50',
    'total p99',
    'TTFC p50 vs direct',
    'TTFC p50 vs floor',
    'total p50 vs floor',
    'data events/stream',
  ];
  return [
    `## 3. Streaming (${s.streamChunks} chunks, ${s.streamDelayMs} ms apart; ms)`,
    '',
    '**Sequential** (one stream at a time)',
    '',
    table(headers, rowsFor('sequential')),
    `**Concurrent** (${s.streamConcurrency} at a time)`,
    '',
    table(headers, rowsFor('concurrent')),
    relayCostTable(input),
  ].join('\n');
}

/**
 * What relaying one streamed event costs a proxy: its CPU over a whole streams run (sequential
 * and concurrent streams, the untimed ones included) per stream, less what a non-streamed
 * request costs it at the latency rate in the same rounds, spread over the stream's events; and
 * the time the gateway adds per chunk: how much longer its sequential streams take after their
 * first chunk than the floor's, per chunk after the first.
 * @param {ReportInput} input
 */
function relayCostTable(input) {
  const atRate = input.rateRuns.find((entry) => entry.rate === TARGETS.latencyRate)?.runs;
  const afterFirst = (/** @type {TargetKey} */ key) => {
    const stats = pooledStreams(input.streamRuns[key], 'sequential');
    return stats.total.p50 - stats.ttfc.p50;
  };
  const rows = input.targets
    .filter(({ key }) => key !== 'direct')
    .map(({ key, label }) => {
      const runs = input.streamRuns[key];
      const perStream = medianOf(
        runs,
        (run) => (run.serverCpu.proxyMs * 1000) / (run.streamsSent || Number.NaN),
      );
      const perRequest = atRate ? medianOf(atRate[key], proxyCpuPerRequestUs) : Number.NaN;
      const events = median(runs.map((run) => run.maxEvents));
      return [
        `**${label}**`,
        int(perStream),
        int(perRequest),
        int((perStream - perRequest) / events),
        key === 'tollgate'
          ? signedMs((afterFirst('tollgate') - afterFirst('floor')) / Math.max(1, events - 1))
          : '–',
      ];
    });
  return [
    '',
    `**Relay cost per chunk** (proxy CPU from /proc over each streams run; a non-streamed request's CPU at ${TARGETS.latencyRate} req/s in the same rounds is what a stream costs before its events; added time per chunk: sequential total p50 minus TTFC p50, over the floor's, per chunk after the first)`,
    '',
    table(
      [
        'target',
        'CPU µs per stream',
        `CPU µs per non-streamed request at ${TARGETS.latencyRate} req/s`,
        'CPU µs per relayed event beyond that',
        'added ms per chunk over floor',
      ],
      rows,
    ),
  ].join('\n');
}

/** @param {ReportInput} input */
function memorySection(input) {
  /** @param {MemoryTimeline} timeline */
  const row = (timeline) => [
    mb(timeline.atBoot?.rssKb ?? Number.NaN),
    mb(timeline.afterWarmup?.rssKb ?? Number.NaN),
    mb(median(timeline.underLoadKb)),
    mb(timeline.underLoadKb.length > 0 ? Math.max(...timeline.underLoadKb) : Number.NaN),
    mb(timeline.afterRun?.rssKb ?? Number.NaN),
    mb(timeline.afterRun?.hwmKb ?? Number.NaN),
  ];
  return [
    '## 4. Memory (RSS; the floor shows what any Node proxy process costs here)',
    '',
    table(
      [
        'process',
        'idle after boot',
        'idle after warm-up',
        'under load, median',
        'under load, max',
        'idle after the run',
        'peak (VmHWM)',
      ],
      [
        [`**${labelOf(input, 'tollgate')}**`, ...row(input.memory.tollgate)],
        ['floor', ...row(input.memory.floor)],
      ],
    ),
  ].join('\n');
}

/**
 * @typedef {object} Verdict
 * @property {string} name
 * @property {string} threshold
 * @property {string} measured
 * @property {'PASS' | 'MISS' | 'n/a'} result
 */

/**
 * @param {ReportInput} input
 * @returns {Verdict[]}
 */
export function evaluateTargets(input) {
  /** @type {Verdict[]} */
  const verdicts = [];
  const pass = (/** @type {boolean} */ ok, /** @type {boolean} */ clean) => (ok && clean ? 'PASS' : 'MISS');
  const errorNote = (/** @type {boolean} */ clean) => (clean ? '' : ' (errors during the run: see ⚠)');

  const floorRps = medianOf(input.maxRuns.floor, (run) => run.reqPerSec);
  const gatewayRps = medianOf(input.maxRuns.tollgate, (run) => run.reqPerSec);
  const maxClean = failures(input.maxRuns.tollgate) === 0 && failures(input.maxRuns.floor) === 0;
  verdicts.push({
    name: 'Max non-stream req/s vs floor',
    threshold: `≥ ${pct(TARGETS.maxRpsShareOfFloor)} of floor`,
    measured: `${int(gatewayRps)} vs ${int(floorRps)} req/s = ${pct(gatewayRps / floorRps)}${errorNote(maxClean)}`,
    result: pass(gatewayRps >= TARGETS.maxRpsShareOfFloor * floorRps, maxClean),
  });

  const atRate = input.rateRuns.find((entry) => entry.rate === TARGETS.latencyRate);
  if (atRate === undefined) {
    for (const name of [`Added p50 at ${TARGETS.latencyRate} req/s`, `p99 at ${TARGETS.latencyRate} req/s`]) {
      verdicts.push({
        name,
        threshold: '',
        measured: `${TARGETS.latencyRate} not in BENCH_RATES`,
        result: 'n/a',
      });
    }
  } else {
    const p50 = (/** @type {TargetKey} */ key) => medianOf(atRate.runs[key], (run) => run.latencyMs.p50);
    const gatewayP99 = medianOf(atRate.runs.tollgate, (run) => run.latencyMs.p99);
    const clean = failures(atRate.runs.tollgate) === 0 && failures(atRate.runs.floor) === 0;
    const gatewayAdded = p50('tollgate') - p50('direct');
    const floorAdded = p50('floor') - p50('direct');
    verdicts.push({
      name: `Added p50 at ${TARGETS.latencyRate} req/s vs floor's added p50`,
      threshold: `≤ +${ms(TARGETS.addedP50OverFloorMs)} ms`,
      measured: `tollgate adds ${signedMs(gatewayAdded)} ms, floor ${signedMs(floorAdded)} ms: ${signedMs(gatewayAdded - floorAdded)} ms${errorNote(clean)}`,
      result: pass(gatewayAdded - floorAdded <= TARGETS.addedP50OverFloorMs, clean),
    });
    verdicts.push({
      name: `Tollgate p99 at ${TARGETS.latencyRate} req/s`,
      threshold: `< ${TARGETS.p99AtRateMs} ms`,
      // The floor's and direct's p99 say whether the machine allows the target at all.
      measured:
        `${ms(gatewayP99)} ms (floor ${ms(medianOf(atRate.runs.floor, (run) => run.latencyMs.p99))}, ` +
        `direct ${ms(medianOf(atRate.runs.direct, (run) => run.latencyMs.p99))})` +
        errorNote(failures(atRate.runs.tollgate) === 0),
      result: pass(gatewayP99 < TARGETS.p99AtRateMs, failures(atRate.runs.tollgate) === 0),
    });
  }

  const quota = input.quota;
  if (quota !== undefined && 'runs' in quota) {
    const p50 = (/** @type {QuotaTargetKey} */ key) => medianOf(quota.runs[key], (run) => run.latencyMs.p50);
    const clean = failures(quota.runs.tollgateRedis) === 0 && failures(quota.runs.floor) === 0;
    const added = p50('tollgateRedis') - p50('floor');
    verdicts.push({
      name: `Auth + quota + usage on Redis: added p50 over the bare proxy (floor) at ${int(quota.rate)} req/s`,
      threshold: `< +${ms(TARGETS.redisAddedP50OverFloorMs)} ms`,
      measured:
        `tollgate+redis ${ms(p50('tollgateRedis'))} vs floor ${ms(p50('floor'))} ms: ${signedMs(added)} ms ` +
        `(tollgate without Redis ${signedMs(p50('tollgate') - p50('floor'))} ms)${errorNote(clean)}`,
      result: pass(added < TARGETS.redisAddedP50OverFloorMs, clean),
    });
  }

  verdicts.push(...redisPathVerdicts(input.quota));
  verdicts.push(...embeddedVerdicts(input));

  verdicts.push(...cacheVerdicts(input.cache));
  verdicts.push(...routingVerdicts(input.routing));

  const floorStreams = pooledStreams(input.streamRuns.floor, 'sequential');
  const gatewayStreams = pooledStreams(input.streamRuns.tollgate, 'sequential');
  const streamClean = input.streamRuns.tollgate.every((run) => run.errors === 0 && run.missingDone === 0);
  const ttfcDelta = gatewayStreams.ttfc.p50 - floorStreams.ttfc.p50;
  verdicts.push({
    name: 'Streaming time to first chunk over floor (p50, sequential)',
    threshold: `< +${ms(TARGETS.ttfcOverFloorMs)} ms`,
    measured: `${ms(gatewayStreams.ttfc.p50)} vs ${ms(floorStreams.ttfc.p50)} ms: ${signedMs(ttfcDelta)} ms${errorNote(streamClean)}`,
    result: pass(ttfcDelta < TARGETS.ttfcOverFloorMs, streamClean),
  });
  return verdicts;
}

/**
 * The Redis path (key + team limits + budgets) against the bare proxy: max req/s and p99 share,
 * gateway CPU per request at the fixed rate, Redis commands per request.
 * @param {ReportInput['quota']} quota
 * @returns {Verdict[]}
 */
function redisPathVerdicts(quota) {
  if (quota === undefined || !('runs' in quota) || quota.maxRuns === undefined) return [];
  /** @type {Verdict[]} */
  const verdicts = [];
  const maxRps = (/** @type {QuotaTargetKey} */ key) => medianOf(quota.maxRuns[key], (run) => run.reqPerSec);
  const maxClean = failures(quota.maxRuns.tollgateRedis) === 0 && failures(quota.maxRuns.floor) === 0;
  const share = maxRps('tollgateRedis') / maxRps('floor');
  verdicts.push({
    name: 'Redis path: max req/s vs floor',
    threshold: `≥ ${pct(TARGETS.redisMaxRpsShareOfFloor)} of floor`,
    measured: `${int(maxRps('tollgateRedis'))} vs ${int(maxRps('floor'))} req/s = ${pct(share)}`,
    result: maxClean && share >= TARGETS.redisMaxRpsShareOfFloor ? 'PASS' : 'MISS',
  });
  const cpu = (/** @type {QuotaTargetKey} */ key) => medianOf(quota.runs[key], proxyCpuPerRequestUs);
  const clean = failures(quota.runs.tollgateRedis) === 0 && failures(quota.runs.floor) === 0;
  const cpuRatio = cpu('tollgateRedis') / cpu('floor');
  verdicts.push({
    name: `Redis path: gateway CPU per request at ${int(quota.rate)} req/s vs floor`,
    threshold: `≤ ${TARGETS.redisCpuPerRequestOverFloor}x floor`,
    measured: `${int(cpu('tollgateRedis'))} vs ${int(cpu('floor'))} µs = ${cpuRatio.toFixed(2)}x (Redis's own CPU not included)`,
    result: clean && cpuRatio <= TARGETS.redisCpuPerRequestOverFloor ? 'PASS' : 'MISS',
  });
  const p99 = (/** @type {QuotaTargetKey} */ key) => medianOf(quota.runs[key], (run) => run.latencyMs.p99);
  const p99Ratio = p99('tollgateRedis') / p99('floor');
  verdicts.push({
    name: `Redis path: p99 at ${int(quota.rate)} req/s vs floor`,
    threshold: `≤ ${TARGETS.redisP99OverFloor}x floor`,
    measured: `${ms(p99('tollgateRedis'))} vs ${ms(p99('floor'))} ms = ${p99Ratio.toFixed(2)}x`,
    result: clean && p99Ratio <= TARGETS.redisP99OverFloor ? 'PASS' : 'MISS',
  });
  const commands = redisCommandsPerRequest(quota);
  verdicts.push({
    name: 'Redis path: Redis commands per request (INFO commandstats, scripts included)',
    threshold: `≤ ${TARGETS.redisCommandsPerRequest}`,
    measured: `${commands.perRequest.toFixed(2)} (net of idle traffic ${commands.netPerRequest.toFixed(2)})`,
    result: commands.perRequest <= TARGETS.redisCommandsPerRequest ? 'PASS' : 'MISS',
  });
  return verdicts;
}

/**
 * The embedded store without limits against the bare proxy: CPU per request at the latency
 * rate; and the gateway's memory (idle after boot, under load against the floor's).
 * @param {ReportInput} input
 * @returns {Verdict[]}
 */
function embeddedVerdicts(input) {
  /** @type {Verdict[]} */
  const verdicts = [];
  const atRate = input.rateRuns.find((entry) => entry.rate === TARGETS.latencyRate);
  if (atRate !== undefined) {
    const cpu = (/** @type {TargetKey} */ key) => medianOf(atRate.runs[key], proxyCpuPerRequestUs);
    const ratio = cpu('tollgate') / cpu('floor');
    verdicts.push({
      name: `Gateway CPU per request at ${TARGETS.latencyRate} req/s vs floor (embedded store, no limits)`,
      threshold: `≤ ${TARGETS.embeddedCpuPerRequestOverFloor}x floor`,
      measured: `${int(cpu('tollgate'))} vs ${int(cpu('floor'))} µs = ${ratio.toFixed(2)}x`,
      result: ratio <= TARGETS.embeddedCpuPerRequestOverFloor ? 'PASS' : 'MISS',
    });
  }
  const idleKb = input.memory.tollgate.atBoot?.rssKb ?? Number.NaN;
  verdicts.push({
    name: 'Gateway RSS idle after boot',
    threshold: `≤ ${TARGETS.idleRssMb} MB`,
    measured: mb(idleKb),
    result: idleKb / 1024 <= TARGETS.idleRssMb ? 'PASS' : 'MISS',
  });
  const loadKb = median(input.memory.tollgate.underLoadKb);
  const floorKb = median(input.memory.floor.underLoadKb);
  verdicts.push({
    name: "Gateway RSS under load (median) vs the floor's",
    threshold: `≤ floor + ${TARGETS.loadRssOverFloorMb} MB`,
    measured: `${mb(loadKb)} vs ${mb(floorKb)}: +${mb(loadKb - floorKb)}`,
    result: (loadKb - floorKb) / 1024 <= TARGETS.loadRssOverFloorMb ? 'PASS' : 'MISS',
  });
  return verdicts;
}

/** @param {ReportInput} input */
function perRoundSection(input) {
  const header = ['measurement', ...input.targets.map(({ label }) => label)];
  /** @param {MeasuredRequests | MeasuredStreams} run */
  const noisy = (run) =>
    run.foreignCores > input.noise.limitCores ? ` noisy (${cores(run.foreignCores)} cores)` : '';
  /** @type {string[][]} */
  const rows = [];
  for (let round = 1; round <= input.settings.rounds; round += 1) {
    /** @param {readonly MeasuredRequests[]} runs */
    const inRound = (runs) => runs.find((run) => run.round === round);
    rows.push([
      `round ${round}: max req/s (p99 ms)`,
      ...input.targets.map(({ key }) => {
        const run = inRound(input.maxRuns[key]);
        return run === undefined ? '–' : `${int(run.reqPerSec)} (${ms(run.latencyMs.p99)})${noisy(run)}`;
      }),
    ]);
    for (const { rate, runs } of input.rateRuns) {
      rows.push([
        `round ${round}: ${int(rate)} req/s p50 / p99 ms`,
        ...input.targets.map(({ key }) => {
          const run = inRound(runs[key]);
          return run === undefined ? '–' : `${ms(run.latencyMs.p50)} / ${ms(run.latencyMs.p99)}${noisy(run)}`;
        }),
      ]);
    }
    rows.push([
      `round ${round}: stream TTFC p50 / total p50 ms`,
      ...input.targets.map(({ key }) => {
        const run = input.streamRuns[key].find((entry) => entry.round === round);
        return run === undefined
          ? '–'
          : `${ms(median(run.sequential.ttfcMs))} / ${ms(median(run.sequential.totalMs))}${noisy(run)}`;
      }),
    ]);
  }
  return `## 5. Per-round figures\n\n${table(header, rows)}`;
}

/** @typedef {import('../run.mjs').QuotaTargetKey} QuotaTargetKey */
/** @typedef {import('../run.mjs').QuotaRun} QuotaRun */
/** @typedef {import('../run.mjs').QuotaResults} QuotaResults */

/**
 * Redis commands per request over all tollgate+redis runs: raw, and minus what the gateway sends
 * with no load (idle rate × the runs' time), per command.
 * @param {QuotaResults} quota
 */
export function redisCommandsPerRequest(quota) {
  const runs = quota.runs.tollgateRedis.filter((run) => run.redis !== undefined);
  const requests = runs.reduce((sum, run) => sum + run.completedTotal, 0);
  const elapsedMs = runs.reduce((sum, run) => sum + (run.redis?.elapsedMs ?? 0), 0);
  const idleShare = elapsedMs / quota.idle.elapsedMs; // idle window → the runs' time
  const names = new Set([
    ...runs.flatMap((run) => Object.keys(run.redis?.commands ?? {})),
    ...Object.keys(quota.idle.commands),
  ]);
  const commands = [...names]
    .map((name) => {
      const calls = runs.reduce((sum, run) => sum + (run.redis?.commands[name]?.calls ?? 0), 0);
      const usec = runs.reduce((sum, run) => sum + (run.redis?.commands[name]?.usec ?? 0), 0);
      const idleCalls = (quota.idle.commands[name]?.calls ?? 0) * idleShare;
      return {
        name,
        calls,
        perRequest: calls / requests,
        netPerRequest: Math.max(0, calls - idleCalls) / requests,
        idlePerSecond: ((quota.idle.commands[name]?.calls ?? 0) * 1000) / quota.idle.elapsedMs,
        usecPerCall: calls > 0 ? usec / calls : Number.NaN,
        usecPerRequest: usec / requests,
      };
    })
    .sort((a, b) => b.calls - a.calls || a.name.localeCompare(b.name));
  const total = runs.reduce((sum, run) => sum + (run.redis?.totalCommands ?? 0), 0);
  const idleTotal = quota.idle.totalCommands * idleShare;
  const redisCpuMs = runs.reduce((sum, run) => sum + (run.redisCpuMs ?? 0), 0);
  return {
    requests,
    elapsedMs,
    perRequest: total / requests,
    netPerRequest: (total - idleTotal) / requests,
    idlePerSecond: (quota.idle.totalCommands * 1000) / quota.idle.elapsedMs,
    redisCpuUsPerRequest: (redisCpuMs * 1000) / requests,
    commands,
  };
}

/** @param {ReportInput} input */
function quotaSection(input) {
  const quota = input.quota;
  if (quota === undefined) return '';
  const title = '## 6. Auth + quota + usage on Redis';
  if (!('runs' in quota)) return `${title}\n\nSkipped: ${quota.skipped}.\n`;
  const { rate, runs } = quota;
  const p50 = (/** @type {QuotaTargetKey} */ key) => medianOf(runs[key], (run) => run.latencyMs.p50);
  const p99 = (/** @type {QuotaTargetKey} */ key) => medianOf(runs[key], (run) => run.latencyMs.p99);
  const rows = quota.targets.map(({ key, label }) => {
    const achieved = medianOf(runs[key], (run) => run.reqPerSec);
    return [
      `**${label}**${failures(runs[key]) > 0 ? ' ⚠' : ''}`,
      `${int(achieved)}${achieved < rate * 0.97 ? ' (saturated)' : ''}`,
      ms(p50(key)),
      ms(medianOf(runs[key], (run) => run.latencyMs.p90)),
      ms(p99(key)),
      ms(medianOf(runs[key], (run) => run.latencyMs.max)),
      key === 'floor' ? '–' : signedMs(p50(key) - p50('floor')),
      key === 'floor' ? '–' : signedMs(p99(key) - p99('floor')),
      key === 'tollgateRedis' ? signedMs(p50(key) - p50('tollgate')) : '–',
      key === 'tollgateRedis' ? signedMs(p99(key) - p99('tollgate')) : '–',
      int(medianOf(runs[key], proxyCpuPerRequestUs)),
      ms(medianOf(runs[key], (run) => run.sendLagMs?.p99 ?? Number.NaN)),
      clientStallsCell(runs[key]),
    ];
  });
  const added = p50('tollgateRedis') - p50('floor');
  const clean = failures(runs.tollgateRedis) === 0 && failures(runs.floor) === 0;
  const verdict = added < TARGETS.redisAddedP50OverFloorMs && clean ? 'PASS' : 'MISS';
  const counts = redisCommandsPerRequest(quota);
  const per = (/** @type {number} */ value) => (Number.isFinite(value) ? value.toFixed(2) : '–');
  const commandRows = counts.commands.map((command) => [
    `\`${command.name}\``,
    per(command.perRequest),
    per(command.netPerRequest),
    per(command.idlePerSecond),
    ms(command.usecPerCall),
    ms(command.usecPerRequest),
  ]);
  commandRows.push([
    '**all**',
    `**${per(counts.perRequest)}**`,
    `**${per(counts.netPerRequest)}**`,
    per(counts.idlePerSecond),
    '',
    ms(counts.commands.reduce((sum, command) => sum + command.usecPerRequest, 0)),
  ]);
  const limits =
    /** @type {{ team: { limits: object, budgets: object[] }, key: { limits: object, budgets: object[] } }} */ (
      quota.limits
    );
  /** @type {string[][]} */
  const roundRows = [];
  for (let round = 1; round <= input.settings.rounds; round += 1) {
    roundRows.push([
      `round ${round}: p50 / p99 ms`,
      ...quota.targets.map(({ key }) => {
        const run = runs[key].find((entry) => entry.round === round);
        if (run === undefined) return '–';
        const noisy =
          run.foreignCores > input.noise.limitCores ? ` noisy (${cores(run.foreignCores)} cores)` : '';
        const commands =
          run.redis === undefined ? '' : `; ${per(run.redis.totalCommands / run.completedTotal)} cmd/req`;
        return `${ms(run.latencyMs.p50)} / ${ms(run.latencyMs.p99)}${commands}${noisy}`;
      }),
    ]);
  }
  const standing = summarizeStanding(quota.standing);
  const sample = quota.sample;
  const sampleNames = [...new Set([...Object.keys(sample.sent), ...Object.keys(sample.inScripts)])].sort(
    (a, b) =>
      (sample.sent[b] ?? 0) +
        (sample.inScripts[b] ?? 0) -
        (sample.sent[a] ?? 0) -
        (sample.inScripts[a] ?? 0) || a.localeCompare(b),
  );
  const perSample = (/** @type {number | undefined} */ count) =>
    count === undefined ? '–' : per(count / sample.requests);
  const sentTotal = Object.values(sample.sent).reduce((sum, count) => sum + count, 0);
  const scriptTotal = Object.values(sample.inScripts).reduce((sum, count) => sum + count, 0);
  const sampleRows = sampleNames.map((name) => [
    `\`${name}\``,
    perSample(sample.sent[name]),
    perSample(sample.inScripts[name]),
  ]);
  sampleRows.push(['**all**', `**${perSample(sentTotal)}**`, `**${perSample(scriptTotal)}**`]);
  return [
    `${title} at ${int(rate)} req/s (non-stream, ms)`,
    '',
    `- **tollgate+redis**: the same \`${quota.setup.gatewayCommand}\` with \`redis: { url }\` pointing at a ` +
      `throwaway redis-server ${quota.setup.redisVersion} the run started on a free port (127.0.0.1, no ` +
      'persistence) and stopped afterwards; teams, keys, quota counters and usage live there. Its key ' +
      `has limits and budgets (team: ${JSON.stringify(limits.team.limits)}, budgets ` +
      `${JSON.stringify(limits.team.budgets)}; key a little tighter), far above what the run uses, so ` +
      'every stage does its work: auth (key lookup, cached ≤ 1 s), quota (one script before the ' +
      'upstream: request rates and the reservation together; one settle after) and usage recording ' +
      '(after the response). The config ' +
      'prices the mock model (1 / 2 USD per 1M tokens) so the USD budget counts.',
    '- **tollgate**: the gateway of sections 1–5 (memory store, key without limits: auth and usage ' +
      'recording in memory, no quota work). **floor**: the bare proxy.',
    `- Paced open-loop client at ${int(rate)} req/s, ${input.settings.durationSec} s after ` +
      `${input.settings.rateWarmupSec} s at the rate, ${input.settings.rounds} round(s), order rotating; ` +
      'tables show the median of the rounds. Measured after sections 1–5, with the tollgate+redis ' +
      `gateway warmed up for ${input.settings.warmupSec} s (closed loop).`,
    '',
    table(
      [
        'target',
        'achieved req/s',
        'p50',
        'p90',
        'p99',
        'max',
        'added p50 vs floor',
        'added p99 vs floor',
        'p50 vs tollgate',
        'p99 vs tollgate',
        'proxy CPU µs/req',
        'loadgen send lag p99',
        LOADGEN_STALLS_HEADER,
      ],
      rows,
    ),
    ...(quota.maxRuns === undefined
      ? []
      : [
          '**As fast as they go** (autocannon, ' +
            `${input.settings.connections} connections, ${input.settings.durationSec} s a run; median of the rounds):`,
          '',
          table(
            ['target', 'max req/s', 'share of floor', 'p99 ms', 'proxy CPU µs/req'],
            quota.targets.map(({ key, label }) => {
              const max = medianOf(quota.maxRuns[key], (run) => run.reqPerSec);
              const floorMax = medianOf(quota.maxRuns.floor, (run) => run.reqPerSec);
              return [
                `**${label}**${failures(quota.maxRuns[key]) > 0 ? ' ⚠' : ''}`,
                int(max),
                pct(max / floorMax),
                ms(medianOf(quota.maxRuns[key], (run) => run.latencyMs.p99)),
                int(medianOf(quota.maxRuns[key], proxyCpuPerRequestUs)),
              ];
            }),
          ),
        ]),
    `**${verdict}**: auth + quota + usage on Redis add ${signedMs(added)} ms p50 over the bare proxy at ` +
      `${int(rate)} req/s (target < +${ms(TARGETS.redisAddedP50OverFloorMs)} ms); of that, Redis-backed ` +
      `quota and storage cost ${signedMs(p50('tollgateRedis') - p50('tollgate'))} ms over tollgate without ` +
      `Redis.${clean ? '' : ' Errors during the run: see ⚠ and the notes.'}`,
    '',
    `**Redis commands per request** (INFO stats \`total_commands_processed\` and INFO commandstats, read ` +
      `before and after every tollgate+redis run, ${int(counts.requests)} requests over ` +
      `${(counts.elapsedMs / 1000).toFixed(1)} s in all; the bench's own INFO calls are not counted). With ` +
      `no load the gateway sends ${per(counts.idlePerSecond)} commands/s on its own (counted over ` +
      `${quota.idleSec} s, right after the warm-up: deferred work such as the key last-used flush shows up ` +
      `there); "net" subtracts that rate × the runs' time, "raw" subtracts nothing. Redis ` +
      `CPU: ${int(counts.redisCpuUsPerRequest)} µs/request (raw).`,
    '',
    table(
      ['command', 'per request, raw', 'per request, net', 'idle, per s', 'Redis µs/call', 'Redis µs/request'],
      commandRows,
    ),
    `**Sent by the gateway vs run inside Lua scripts** (INFO counts both): MONITOR over ${sample.requests} ` +
      `sequential requests after the timed runs (${(sample.windowMs / 1000).toFixed(1)} s, so idle traffic ` +
      `adds about ${per((counts.idlePerSecond * sample.windowMs) / 1000 / sample.requests)} per request here). ` +
      `Per request the gateway sends ${perSample(sentTotal)} commands in about ${perSample(sample.roundTrips)} ` +
      'round trips (a MULTI…EXEC block counted once; not all of them on the response path), and its ' +
      `scripts run ${perSample(scriptTotal)} more.`,
    '',
    table(['command', 'sent per request', 'in scripts per request'], sampleRows),
    standing === '' ? '' : `${standing}\n`,
    table(['measurement', ...quota.targets.map(({ label }) => label)], roundRows),
  ].join('\n');
}

/** @typedef {import('../run.mjs').CacheTargetKey} CacheTargetKey */
/** @typedef {import('../run.mjs').CacheRun} CacheRun */

/** @param {string} label @param {number} rate */
const cacheVerdictName = (label, rate) =>
  `${label[0]?.toUpperCase()}${label.slice(1)} p50 at ${int(rate)} req/s (~1 KB answer)`;

/**
 * Section 7's PASS/MISS lines, one per store; a failed section is a MISS, not silence.
 * @param {import('../run.mjs').CacheSection | undefined} cache
 * @returns {Verdict[]}
 */
function cacheVerdicts(cache) {
  if (cache === undefined) return [];
  const threshold = `< ${ms(TARGETS.cacheHitP50Ms)} ms`;
  if (!('rateRuns' in cache)) {
    const failed = cache.skipped.startsWith('failed');
    return ['cache hit (memory)', 'cache hit (redis)'].map((label) => ({
      name: cacheVerdictName(label, TARGETS.cacheHitRate),
      threshold,
      measured: `section 7 ${failed ? '' : 'skipped: '}${cache.skipped}`,
      result: failed ? 'MISS' : 'n/a',
    }));
  }
  const floorP50 = medianOf(cache.rateRuns.floor, (run) => run.latencyMs.p50);
  return cache.targets
    .filter(({ key }) => key !== 'floor')
    .map(({ key, label }) => {
      const runs = cache.rateRuns[key];
      const p50 = medianOf(runs, (run) => run.latencyMs.p50);
      const leaked = runs.reduce((sum, run) => sum + (run.mockRequests ?? 0), 0);
      const clean = failures(runs) === 0 && leaked === 0;
      const achieved = medianOf(runs, (run) => run.reqPerSec);
      const atRate = achieved >= cache.rate * 0.97;
      return {
        name: cacheVerdictName(label, cache.rate),
        threshold:
          threshold +
          (cache.rate === TARGETS.cacheHitRate
            ? ''
            : ` (the target is at ${int(TARGETS.cacheHitRate)} req/s)`),
        measured:
          `${ms(p50)} ms (p99 ${ms(medianOf(runs, (run) => run.latencyMs.p99))}; floor p50 ${ms(floorP50)})` +
          (atRate ? '' : `, saturated at ${int(achieved)} req/s`) +
          (leaked > 0 ? `, ${int(leaked)} requests reached the mock` : '') +
          (failures(runs) > 0 ? ' (errors during the run: see ⚠)' : ''),
        result:
          cache.rate !== TARGETS.cacheHitRate
            ? 'n/a'
            : p50 < TARGETS.cacheHitP50Ms && clean && atRate
              ? 'PASS'
              : 'MISS',
      };
    });
}

/**
 * Redis commands per hit over all the cache-hit (redis) runs, the most frequent first.
 * @param {import('../run.mjs').CacheResults} cache
 */
function redisHitLine(cache) {
  const runs = [...cache.rateRuns.cacheRedis, ...cache.maxRuns.cacheRedis].filter(
    (run) => run.redis !== undefined,
  );
  const requests = runs.reduce((sum, run) => sum + run.completedTotal, 0);
  if (runs.length === 0 || requests === 0) return '';
  /** @type {Record<string, number>} */
  const calls = {};
  let total = 0;
  for (const run of runs) {
    total += run.redis?.totalCommands ?? 0;
    for (const [name, count] of Object.entries(run.redis?.commands ?? {}))
      calls[name] = (calls[name] ?? 0) + count.calls;
  }
  const listed = Object.entries(calls)
    .filter(([, count]) => count / requests >= 0.005)
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => `\`${name}\` ${(count / requests).toFixed(2)}`)
    .join(', ');
  return (
    `- **cache hit (redis)**: ${(total / requests).toFixed(2)} Redis commands per hit (INFO before and after ` +
    `every run, ${int(requests)} requests, the gateway's background traffic included; commands inside Lua ` +
    `scripts count too): ${listed}.`
  );
}

/** @param {ReportInput} input */
function cacheSection(input) {
  const cache = input.cache;
  if (cache === undefined) return '';
  const title = '## 7. Cache hits';
  if (!('rateRuns' in cache))
    return `${title}

Skipped: ${cache.skipped}.
`;
  const { rate, rateRuns, maxRuns } = cache;
  const p50 = (/** @type {CacheTargetKey} */ key) => medianOf(rateRuns[key], (run) => run.latencyMs.p50);
  const p99 = (/** @type {CacheTargetKey} */ key) => medianOf(rateRuns[key], (run) => run.latencyMs.p99);
  const maxRps = (/** @type {CacheTargetKey} */ key) => medianOf(maxRuns[key], (run) => run.reqPerSec);
  const mockTotal = (/** @type {readonly CacheRun[]} */ runs) =>
    runs.some((run) => run.mockRequests !== undefined)
      ? int(runs.reduce((sum, run) => sum + (run.mockRequests ?? 0), 0))
      : '?';
  const rows = cache.targets.map(({ key, label }) => {
    const achieved = medianOf(rateRuns[key], (run) => run.reqPerSec);
    const cacheKey = key === 'floor' ? null : /** @type {'cacheMemory' | 'cacheRedis'} */ (key);
    return [
      `**${label}**${failures(rateRuns[key]) + failures(maxRuns[key]) > 0 ? ' ⚠' : ''}`,
      `${int(achieved)}${achieved < rate * 0.97 ? ' (saturated)' : ''}`,
      ms(p50(key)),
      ms(medianOf(rateRuns[key], (run) => run.latencyMs.p90)),
      ms(p99(key)),
      ms(medianOf(rateRuns[key], (run) => run.latencyMs.max)),
      key === 'floor' ? '–' : signedMs(p50(key) - p50('floor')),
      int(medianOf(rateRuns[key], proxyCpuPerRequestUs)),
      int(maxRps(key)),
      ms(medianOf(maxRuns[key], (run) => run.latencyMs.p99)),
      key === 'floor' ? '100 %' : pct(maxRps(key) / maxRps('floor')),
      int(medianOf(maxRuns[key], proxyCpuPerRequestUs)),
      cacheKey === null ? '(all)' : `${mockTotal([...rateRuns[key], ...maxRuns[key]])}`,
    ];
  });
  const verdicts = cacheVerdicts(cache);
  const checkLines = cache.targets
    .filter(({ key }) => key !== 'floor')
    .map(({ key, label }) => {
      const check = cache.checks[/** @type {'cacheMemory' | 'cacheRedis'} */ (key)];
      return (
        `- **${label}**: warm-up answered \`x-tollgate-cache: ${check.warmup.join('` then `')}\` ` +
        `(${int(check.answerBytes)} B body; the mock saw ${Number.isFinite(check.mockAfterWarmup) ? int(check.mockAfterWarmup) : '?'} ` +
        `request(s)); closing sample of ${cache.sampleRequests} sequential requests: ` +
        `${Object.entries(check.sample)
          .map(([value, count]) => `${count} × ${value}`)
          .join(', ')}.`
      );
    });
  /** @type {string[][]} */
  const roundRows = [];
  for (let round = 1; round <= input.settings.rounds; round += 1) {
    /** @param {CacheRun | undefined} run */
    const noisy = (run) =>
      run !== undefined && run.foreignCores > input.noise.limitCores
        ? ` noisy (${cores(run.foreignCores)} cores)`
        : '';
    roundRows.push([
      `round ${round}: ${int(rate)} req/s p50 / p99 ms`,
      ...cache.targets.map(({ key }) => {
        const run = rateRuns[key].find((entry) => entry.round === round);
        return run === undefined ? '–' : `${ms(run.latencyMs.p50)} / ${ms(run.latencyMs.p99)}${noisy(run)}`;
      }),
    ]);
    roundRows.push([
      `round ${round}: max req/s (p99 ms)`,
      ...cache.targets.map(({ key }) => {
        const run = maxRuns[key].find((entry) => entry.round === round);
        return run === undefined ? '–' : `${int(run.reqPerSec)} (${ms(run.latencyMs.p99)})${noisy(run)}`;
      }),
    ]);
  }
  return [
    `${title} at ${int(rate)} req/s and closed loop (non-stream, ms)`,
    '',
    `- **cache hit (memory)** / **cache hit (redis)**: two more gateways (the first: \`${cache.setup.gatewayCommand}\`) with ` +
      '`cache: { enabled: true }`, the first on the embedded store, the second with `redis: { url }` on a ' +
      `throwaway redis-server ${cache.setup.redisVersion} (127.0.0.1, no persistence); both stopped afterwards. ` +
      "Each has its own team key made like the other targets'. The body is the sections 1–5 request " +
      'with `temperature: 0` (cacheable); one request warms the entry, the next must be a HIT or the ' +
      'section fails. Every request measured is then a hit of that ~1 KB answer. **floor**: the bare ' +
      'proxy, which always goes to the mock.',
    `- Paced open-loop client at ${int(rate)} req/s (${input.settings.durationSec} s after ` +
      `${input.settings.rateWarmupSec} s at the rate) and autocannon closed loop with ` +
      `${input.settings.connections} connections (${input.settings.durationSec} s), ${input.settings.rounds} ` +
      'round(s), order rotating; tables show the median of the rounds. "mock requests" is the mock’s own ' +
      'count of chat requests (`GET /stats`) during all the hit runs: it must stay 0.',
    '',
    table(
      [
        'target',
        'achieved req/s',
        'p50',
        'p90',
        'p99',
        'max',
        'p50 vs floor',
        'CPU µs/req at rate',
        'max req/s',
        'max p99',
        'max req/s vs floor',
        'CPU µs/req at max',
        'mock requests',
      ],
      rows,
    ),
    ...verdicts.map(
      (verdict) =>
        `**${verdict.result}**: ${verdict.name}: ${verdict.measured} (target ${verdict.threshold}).`,
    ),
    '',
    `Hit throughput relative to the bare proxy: ${cache.targets
      .filter(({ key }) => key !== 'floor')
      .map(
        ({ key, label }) =>
          `${label} ${int(maxRps(key))} req/s = ${pct(maxRps(key) / maxRps('floor'))} of the floor's ${int(maxRps('floor'))}`,
      )
      .join('; ')}.`,
    '',
    ...checkLines,
    redisHitLine(cache),
    '',
    table(['measurement', ...cache.targets.map(({ label }) => label)], roundRows),
  ].join('\n');
}

/**
 * One line on what the quota counted for the bench key (GET /v1/tollgate/key), as evidence that
 * the budgets were in play.
 * @param {unknown} standing
 */
function summarizeStanding(standing) {
  if (standing === null || typeof standing !== 'object') return '';
  const text = JSON.stringify(standing);
  return `What the quota counted for the bench key afterwards (\`GET /v1/tollgate/key\`): \`${text.length > 900 ? `${text.slice(0, 900)}…` : text}\``;
}

/** @param {ReportInput} input */
function notesSection(input) {
  const notes = [...input.sanityNotes, ...input.noise.events.map((event) => `noise guard: ${event}`)];
  /** @param {string} what @param {readonly MeasuredRequests[]} runs */
  const requestProblems = (what, runs) => {
    const errors = runs.reduce((sum, run) => sum + run.errors, 0);
    const non2xx = runs.reduce((sum, run) => sum + run.non2xx, 0);
    if (errors + non2xx > 0) {
      notes.push(`${what}: ${errors} connection errors/timeouts, ${non2xx} non-2xx responses`);
    }
    // A few ms of lag is normal when three busy processes share 2 cores (see the lag column);
    // beyond this the "fixed rate" was really a series of bursts.
    const worstLag = Math.max(0, ...runs.map((run) => run.sendLagMs?.p99 ?? 0));
    if (worstLag > 20) {
      notes.push(
        `${what}: the load generator sent up to ${ms(worstLag)} ms late (p99): the load came in bursts`,
      );
    }
  };
  for (const { key, label } of input.targets) {
    requestProblems(`${label}, max throughput`, input.maxRuns[key]);
    for (const { rate, runs } of input.rateRuns) requestProblems(`${label}, ${rate} req/s`, runs[key]);
    const streams = input.streamRuns[key];
    const errors = streams.reduce((sum, run) => sum + run.errors, 0);
    const missingDone = streams.reduce((sum, run) => sum + run.missingDone, 0);
    const usage = streams.reduce((sum, run) => sum + run.usageChunks, 0);
    if (errors > 0) notes.push(`${label}, streaming: ${errors} failed streams`);
    if (missingDone > 0) notes.push(`${label}, streaming: ${missingDone} streams without data: [DONE]`);
    if (usage > 0) notes.push(`${label}, streaming: ${usage} streams carried a usage chunk nobody asked for`);
  }
  const quota = input.quota;
  if (quota !== undefined && 'runs' in quota) {
    notes.push(...quota.notes.map((note) => `section 6: ${note}`));
    for (const { key, label } of quota.targets)
      requestProblems(`section 6, ${label}, ${quota.rate} req/s`, quota.runs[key]);
  }
  const cache = input.cache;
  if (cache !== undefined && 'rateRuns' in cache) {
    notes.push(...cache.notes.map((note) => `section 7: ${note}`));
    for (const { key, label } of cache.targets) {
      requestProblems(`section 7, ${label}, ${cache.rate} req/s`, cache.rateRuns[key]);
      requestProblems(`section 7, ${label}, max throughput`, cache.maxRuns[key]);
    }
  } else if (cache?.skipped.startsWith('failed')) {
    notes.push(`section 7 ${cache.skipped}`);
  }
  if (input.gateway.overridden) {
    notes.push(
      'tollgate* is a BENCH_GATEWAY_CMD override, not dist/server.js: its figures test the harness only',
    );
  }
  return `## Notes\n\n${notes.length === 0 ? '- No errors, non-2xx responses or stream anomalies.' : notes.map((note) => `- ${note}`).join('\n')}\n`;
}

/**
 * @param {ReportInput} input
 * @returns {string} markdown
 */
export function renderReport(input) {
  const verdicts = evaluateTargets(input);
  const passed = verdicts.filter((verdict) => verdict.result === 'PASS').length;
  const evaluated = verdicts.filter((verdict) => verdict.result !== 'n/a').length;
  const verdictTable = table(
    ['target', 'threshold', 'measured', 'result'],
    verdicts.map((verdict) => [verdict.name, verdict.threshold, verdict.measured, `**${verdict.result}**`]),
    'llll',
  );
  const runs = allRuns(input);
  const noisy = runs.filter((run) => run.foreignCores > input.noise.limitCores).length;
  const noiseWarning =
    noisy > 0
      ? `\n\n⚠ ${noisy} of ${runs.length} measurements ran while other processes used more than ` +
        `${cores(input.noise.limitCores)} cores (marked "noisy" in section 5): treat the figures as indicative.`
      : '';
  return [
    '# Tollgate benchmark',
    '',
    `${passed}/${evaluated} targets met${input.gateway.overridden ? ' (tollgate* = BENCH_GATEWAY_CMD override)' : ''}.${noiseWarning}`,
    '',
    '## Targets',
    '',
    verdictTable,
    machineSection(input),
    methodSection(input),
    maxSection(input),
    rateSections(input),
    streamSection(input),
    memorySection(input),
    perRoundSection(input),
    quotaSection(input),
    cacheSection(input),
    routingSection(input.routing),
    notesSection(input),
  ].join('\n');
}
