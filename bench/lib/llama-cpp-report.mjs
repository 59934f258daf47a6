// Section 9 of the report: an in-process model (llama-cpp backend, tiny GGUF), from
// bench/llama-cpp-section.mjs. Overhead figures are medians of per-round differences: each round
// measures every path back to back, so a round's difference is not spoiled by drift between
// rounds.
import { median } from './stats.mjs';

/** @typedef {import('../llama-cpp-section.mjs').LlamaCppSection} LlamaCppSection */
/** @typedef {import('../llama-cpp-section.mjs').LlamaCppResults} LlamaCppResults */
/** @typedef {import('../llama-cpp-section.mjs').BlockRun} BlockRun */
/** @typedef {import('../llama-cpp-section.mjs').BurstSummary} BurstSummary */

// The issue's targets: under 0.5 ms per request, and "negligible" per streamed token, which we
// read as under 0.05 ms (a 1,000-token answer would gain under 50 ms; a real model spends tens of
// milliseconds on each token on a CPU).
export const LLAMA_CPP_TARGETS = { perRequestMs: 0.5, perTokenMs: 0.05 };

const ms = (/** @type {number} */ value, digits = 3) =>
  Number.isFinite(value) ? value.toFixed(digits) : '–';
const signedMs = (/** @type {number} */ value, digits = 3) =>
  Number.isFinite(value) ? `${value < 0 ? '−' : '+'}${ms(Math.abs(value), digits)}` : '–';
const int = (/** @type {number} */ value) =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
const signedInt = (/** @type {number} */ value) =>
  Number.isFinite(value) ? `${value < 0 ? '−' : '+'}${int(Math.abs(value))}` : '–';

/**
 * Median over rounds of f(a[r], b[r]) for runs paired by round.
 * @param {BlockRun[]} a
 * @param {BlockRun[]} b
 * @param {(a: BlockRun, b: BlockRun) => number} f
 */
function pairedMedian(a, b, f) {
  const values = [];
  for (const run of a) {
    const other = b.find((candidate) => candidate.round === run.round);
    if (other !== undefined) values.push(f(run, other));
  }
  return median(values);
}

/** @typedef {import('../llama-cpp-section.mjs').PathKey} PathKey */

/**
 * The overhead of one path over another (direct by default), per request and per token, latency
 * and CPU.
 * @param {LlamaCppResults} results
 * @param {PathKey} key
 * @param {PathKey} [base]
 */
export function llamaCppOverhead(results, key, base = 'direct') {
  const { shortTokens, longTokens } = /** @type {{ shortTokens: number, longTokens: number }} */ (
    results.setup
  );
  const extra = longTokens - shortTokens;
  const direct = results.runs[base];
  const gateway = results.runs[key];
  /** @param {(run: BlockRun) => number} of */
  const growth = (of) => (/** @type {BlockRun[]} */ shorts, /** @type {BlockRun[]} */ longs) =>
    pairedMedian(shorts, longs, (s, l) => (of(l) - of(s)) / extra);
  /**
   * @param {(run: BlockRun) => number} of
   */
  const overheadOf = (of) => {
    const perRequest = pairedMedian(gateway.short, direct.short, (g, d) => of(g) - of(d));
    const perToken = median(
      direct.short.map((ds) => {
        const dl = direct.long.find((run) => run.round === ds.round);
        const gs = gateway.short.find((run) => run.round === ds.round);
        const gl = gateway.long.find((run) => run.round === ds.round);
        if (dl === undefined || gs === undefined || gl === undefined) return Number.NaN;
        return (of(gl) - of(gs) - (of(dl) - of(ds))) / extra;
      }),
    );
    return { perRequest, perToken, fixed: perRequest - shortTokens * perToken };
  };
  return {
    latency: overheadOf((run) => run.p50),
    cpuUs: overheadOf((run) => run.cpuUsPerRequest),
    directPerTokenMs: growth((run) => run.p50)(direct.short, direct.long),
  };
}

/** @param {BlockRun[]} runs */
const failuresOf = (runs) => runs.reduce((sum, run) => sum + run.failures, 0);

/** @param {LlamaCppResults} results */
const runFailures = (results) =>
  Object.values(results.runs).reduce(
    (sum, byLength) => sum + failuresOf(byLength.short) + failuresOf(byLength.long),
    0,
  );

/** @param {BurstSummary} summary @param {number} slots */
function expectedCounts(summary, slots) {
  const served = Math.min(summary.concurrency, slots + summary.queue) * summary.bursts;
  return { served, refused: summary.concurrency * summary.bursts - served };
}

/**
 * @param {LlamaCppSection | undefined} section
 * @returns {Array<{ name: string, threshold: string, measured: string, result: string }>}
 */
export function llamaCppVerdicts(section) {
  if (section === undefined) return [];
  const names = [
    'In-process model: gateway overhead per request (non-stream)',
    'In-process model: gateway overhead per request (stream)',
    'In-process model: gateway overhead per streamed token',
    'In-process model: 2× the slots, queue ≥ slots: all answered',
    'In-process model: 2× the slots, small queue: the rest refused with 429',
  ];
  if (!('runs' in section)) {
    const failed = section.skipped.startsWith('failed');
    return names.map((name) => ({
      name,
      threshold: '',
      measured: `section 9 ${failed ? '' : 'skipped: '}${section.skipped}`,
      result: failed ? 'MISS' : 'n/a',
    }));
  }
  const { shortTokens } = /** @type {{ shortTokens: number }} */ (section.setup);
  const slots = /** @type {{ slots: number }} */ (section.setup).slots;
  const plain = llamaCppOverhead(section, 'gateway');
  const stream = llamaCppOverhead(section, 'gatewayStream');
  // Beside the target's figure: the same overhead over the HTTP floor (runs before it had one lack it).
  const overFloor = (/** @type {PathKey} */ key, /** @type {PathKey} */ floor) =>
    section.runs[floor] === undefined
      ? ''
      : `; over the HTTP floor ${signedMs(llamaCppOverhead(section, key, floor).latency.perRequest)} ms`;
  const clean = runFailures(section) === 0;
  const note = clean ? '' : ' (failed requests: see section 9)';
  const { queued, tight } = section.queueing;
  const queuedOk =
    (queued.statuses[200] ?? 0) === queued.concurrency * queued.bursts && queued.wrongTokens === 0;
  const tightExpected = expectedCounts(tight, slots);
  // A burst's requests leave within a millisecond or so, but a busy machine can delay one past the
  // end of a generation; so: no other status, never fewer answered than slots + queue in a burst,
  // some refused, and the gateway's own count of refusals agrees.
  const tightStatusesOk = Object.keys(tight.statuses).every((status) => status === '200' || status === '429');
  const tightOk =
    tightStatusesOk &&
    tight.minServedPerBurst >= Math.min(tight.concurrency, slots + tight.queue) &&
    (tight.statuses[429] ?? 0) > 0 &&
    tight.metrics.rejected === (tight.statuses[429] ?? 0) &&
    tight.wrongTokens === 0;
  const verdict = (/** @type {boolean} */ ok) => (ok ? 'PASS' : 'MISS');
  return [
    {
      name: `${names[0]}, ${shortTokens} tokens`,
      threshold: `< ${ms(LLAMA_CPP_TARGETS.perRequestMs, 1)} ms`,
      measured: `${signedMs(plain.latency.perRequest)} ms${overFloor('gateway', 'floor')}${note}`,
      result: verdict(plain.latency.perRequest < LLAMA_CPP_TARGETS.perRequestMs && clean),
    },
    {
      name: `${names[1]}, ${shortTokens} tokens`,
      threshold: `< ${ms(LLAMA_CPP_TARGETS.perRequestMs, 1)} ms`,
      measured: `${signedMs(stream.latency.perRequest)} ms${overFloor('gatewayStream', 'floorStream')}${note}`,
      result: verdict(stream.latency.perRequest < LLAMA_CPP_TARGETS.perRequestMs && clean),
    },
    {
      name: names[2] ?? '',
      threshold: `< ${ms(LLAMA_CPP_TARGETS.perTokenMs, 2)} ms ("negligible")`,
      measured: `${signedMs(stream.latency.perToken, 4)} ms (direct: ${ms(stream.directPerTokenMs, 4)} ms/token)${note}`,
      result: verdict(stream.latency.perToken < LLAMA_CPP_TARGETS.perTokenMs && clean),
    },
    {
      name: `${names[3]} (${queued.concurrency} at once, ${slots} slots, queue ${queued.queue})`,
      threshold: `${queued.concurrency * queued.bursts} × 200`,
      measured: statusText(queued.statuses),
      result: verdict(queuedOk),
    },
    {
      name: `${names[4]} (${tight.concurrency} at once, ${slots} slots, queue ${tight.queue})`,
      threshold: `${tightExpected.served} × 200, ${tightExpected.refused} × 429 when each burst arrives at once`,
      measured: `${statusText(tight.statuses)}; ${tight.metrics.rejected} refusals counted by the gateway`,
      result: verdict(tightOk),
    },
  ];
}

/** @param {Record<string, number>} statuses */
const statusText = (statuses) =>
  Object.entries(statuses)
    .map(([status, count]) => `${count} × ${status}`)
    .join(', ') || 'none';

/**
 * @param {BurstSummary} summary
 * @param {string} label
 */
function burstRow(summary, label) {
  const { metrics } = summary;
  const waited = metrics.buckets.find(([le]) => le === '0.001');
  const waitedOver1ms = waited === undefined ? Number.NaN : metrics.count - waited[1];
  return [
    label,
    statusText(summary.statuses),
    summary.byPositionP50Ms.map((value) => ms(value, 2)).join(' / '),
    Number.isFinite(summary.refusedP50Ms) ? ms(summary.refusedP50Ms, 2) : '–',
    summary.retryAfter.length > 0 ? summary.retryAfter.join(', ') : '–',
    String(metrics.count),
    int(waitedOver1ms),
    metrics.count > 0 ? ms((metrics.sumSec * 1000) / metrics.count, 2) : '–',
    Number.isFinite(waitedOver1ms) && waitedOver1ms > 0
      ? ms((metrics.sumSec * 1000) / waitedOver1ms, 2)
      : '–',
    String(metrics.rejected),
  ];
}

/**
 * @param {LlamaCppSection | undefined} section
 * @returns {string}
 */
export function llamaCppSection(section) {
  if (section === undefined) return '';
  const title = '## 9. In-process model (llama-cpp): gateway overhead and queueing';
  if (!('runs' in section)) return [title, '', `Skipped: ${section.skipped}.`, ''].join('\n');
  const setup = /** @type {Record<string, number | string>} */ (section.setup);
  const { shortTokens, longTokens } = /** @type {{ shortTokens: number, longTokens: number }} */ (
    section.setup
  );
  const labels = {
    direct: 'direct (node-llama-cpp in process)',
    adapter: 'adapter alone, non-stream',
    adapterStream: 'adapter alone, stream',
    floor: 'HTTP floor, non-stream',
    floorStream: 'HTTP floor, stream',
    gateway: 'gateway, non-stream',
    gatewayStream: 'gateway, stream',
  };
  /** @type {PathKey[]} */
  const order = ['direct', 'adapter', 'adapterStream', 'floor', 'floorStream', 'gateway', 'gatewayStream'];
  const rows = order.map((key) => {
    const { short, long } = section.runs[key];
    const failures = failuresOf(short) + failuresOf(long);
    return [
      `**${labels[key]}**${failures > 0 ? ` ⚠ ${failures} failed` : ''}`,
      ms(median(short.map((run) => run.p50))),
      ms(median(short.map((run) => run.p99))),
      ms(median(long.map((run) => run.p50))),
      ms(
        pairedMedian(short, long, (s, l) => (l.p50 - s.p50) / (longTokens - shortTokens)),
        4,
      ),
      int(median(short.map((run) => run.cpuUsPerRequest))),
      int(median(long.map((run) => run.cpuUsPerRequest))),
    ];
  });
  /** @type {Array<[PathKey, PathKey]>} */
  const pairs = [
    ['gateway', 'direct'],
    ['gatewayStream', 'direct'],
    ['adapter', 'direct'],
    ['adapterStream', 'direct'],
    ['floor', 'direct'],
    ['floorStream', 'direct'],
    ['gateway', 'floor'],
    ['gatewayStream', 'floorStream'],
    ['gateway', 'adapter'],
    ['gatewayStream', 'adapterStream'],
  ];
  const overheadRows = pairs.map(([key, base]) => {
    const o = llamaCppOverhead(section, key, base);
    return [
      `**${labels[key]}** over ${base === 'direct' ? 'direct' : labels[base]}`,
      signedMs(o.latency.perRequest),
      signedMs(o.latency.perToken, 4),
      signedMs(o.latency.fixed),
      signedInt(o.cpuUs.perRequest),
      signedInt(o.cpuUs.perToken),
    ];
  });
  const table = (/** @type {string[]} */ headers, /** @type {string[][]} */ body) => [
    `| ${headers.join(' | ')} |`,
    `| ${headers.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...body.map((row) => `| ${row.join(' | ')} |`),
  ];
  const verdicts = llamaCppVerdicts(section);
  const { queued, tight } = section.queueing;
  return [
    title,
    '',
    `A tiny GGUF written by the run (test/support/tiny-gguf.ts: ${int(Number(setup.modelBytes))} bytes, ` +
      `seeded random weights; chat template ${setup.chatWrapper}, ${setup.promptTokens} prompt tokens) on ` +
      `node-llama-cpp ${setup.nodeLlamaCpp}, CPU only, ${setup.threads} thread(s), context ${setup.contextSize}, ` +
      `temperature 0, max_tokens ${shortTokens} and ${longTokens} (the model never ends early). ` +
      '**direct**: node-llama-cpp called in one process, no HTTP: chat template + tokenize, clear the ' +
      'sequence, evaluate, detokenize token by token (what any server must do per request). **adapter ' +
      'alone**: the gateway\u2019s llama-cpp backend (dist/backends/llama-cpp) called in one process, no ' +
      'HTTP, no routing or auth, its whole answer read. **HTTP floor**: a bare node:http server ' +
      '(bench/lib/llama-http-floor.mjs) doing what direct does per request and answering in the ' +
      'OpenAI shape, called like the gateway: what any HTTP hop in front of this model costs here. **gateway**: ' +
      `\`${setup.gatewayCommand}\` with a llama-cpp backend (1 slot) on the same file, the same settings, ` +
      'called over HTTP (keep-alive, auth on) by a separate client process; timed from sending the ' +
      'request to the last byte. CPU is the serving process\u2019s (all threads, llama.cpp\u2019s included). ' +
      `${setup.requests} timed requests per path and length per round after ${setup.warmup} untimed, ` +
      `${setup.rounds} round(s), order rotated; medians of the rounds (overheads: medians of the per-round ` +
      'differences).',
    '',
    ...table(
      [
        'path',
        `p50 ms, ${shortTokens} tok`,
        `p99 ms, ${shortTokens} tok`,
        `p50 ms, ${longTokens} tok`,
        'ms per extra token',
        `CPU µs/req, ${shortTokens} tok`,
        `CPU µs/req, ${longTokens} tok`,
      ],
      rows,
    ),
    '',
    `Overheads (per request at ${shortTokens} tokens; per token from the growth ${shortTokens} → ` +
      `${longTokens}; fixed = per request − ${shortTokens} × per token). The gateway over the HTTP ` +
      'floor is what the gateway adds beyond any server\u2019s HTTP hop; the last two rows are its share ' +
      'beyond its adapter: HTTP, auth, routing, logging, usage:',
    '',
    ...table(
      ['path', 'per request ms', 'per token ms', 'fixed ms', 'CPU µs/req', 'CPU µs/token'],
      overheadRows,
    ),
    '',
    `Queueing: a second gateway whose model has ${setup.slots} slot(s); ${queued.bursts} bursts of ` +
      `${queued.concurrency} concurrent requests (${shortTokens} tokens each) per queue length, after 3 ` +
      `untimed bursts. One request alone there: p50 ${ms(section.queueing.aloneP50Ms, 2)} ms. ` +
      '"answers" gives the p50 time from the burst\u2019s start to the 1st, 2nd, … answer; waits come from ' +
      'the gateway\u2019s tollgate_backend_queue_wait_seconds (requests that found a free slot count as ' +
      'a wait under 1 ms) and refusals from tollgate_backend_queue_rejected_total.',
    '',
    ...table(
      [
        'queue',
        'statuses',
        'answers at (p50 ms)',
        '429 after (p50 ms)',
        'retry-after',
        'waits counted',
        'waited > 1 ms',
        'mean wait ms (all)',
        'mean wait ms (waited)',
        'refused (metric)',
      ],
      [burstRow(queued, String(queued.queue)), burstRow(tight, String(tight.queue))],
    ),
    '',
    ...table(
      ['target', 'threshold', 'measured', 'result'],
      verdicts.map((v) => [v.name, v.threshold, v.measured, `**${v.result}**`]),
    ),
    ...(section.notes.length > 0 ? ['', ...section.notes.map((note) => `- ${note}`)] : []),
    '',
  ].join('\n');
}
