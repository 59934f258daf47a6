// Turns the raw figures of one run into the markdown report: absolute numbers first, then the
// ratios and deltas against direct (no hop) and against the floor (cheapest Node hop), then the
// PASS/MISS verdict for each target.
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
 * @property {{ commandLine: string, overridden: boolean, logLevel: string, logDestination: string,
 *   logStats: { lines: number, bytes: number } | null, configSource: string }} gateway
 * @property {Array<{ key: TargetKey, label: string }>} targets
 * @property {string[]} sanityNotes
 * @property {Record<TargetKey, MeasuredRequests[]>} maxRuns
 * @property {Array<{ rate: number, runs: Record<TargetKey, MeasuredRequests[]> }>} rateRuns
 * @property {Record<TargetKey, MeasuredStreams[]>} streamRuns
 * @property {Record<'floor' | 'tollgate', MemoryTimeline>} memory
 * @property {{ limitCores: number, waitedSec: number, repeats: number, events: string[] }} noise
 */

// The targets from the brief. Kept here, next to the code that evaluates them.
const TARGETS = {
  maxRpsShareOfFloor: 0.8,
  addedP50OverFloorMs: 0.2,
  p99AtRateMs: 3,
  latencyRate: 500,
  ttfcOverFloorMs: 1,
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
    ['Gateway log level', `${gateway.logLevel} (stdout to ${gateway.logDestination})`],
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
    notesSection(input),
  ].join('\n');
}
