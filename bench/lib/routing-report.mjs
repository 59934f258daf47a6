// Section 8 of the report: a model on three deployments against the same model on one, from
// bench/run.mjs's runRoutingSection. Kept apart from report.mjs, which imports it.
import { median, summarize } from './stats.mjs';

/** @typedef {'tollgate' | 'tollgateThree'} RoutingTargetKey */
/** @typedef {import('../run.mjs').MeasuredRequests} MeasuredRequests */
/** @typedef {import('../run.mjs').MeasuredStreams} MeasuredStreams */
/**
 * @typedef {object} RoutingResults
 * @property {number} rate fixed rate (req/s, paced client) of the request runs
 * @property {Array<{ key: RoutingTargetKey, label: string }>} targets
 * @property {Record<RoutingTargetKey, MeasuredRequests[]>} rateRuns
 * @property {Record<RoutingTargetKey, MeasuredStreams[]>} streamRuns sequential streams only
 * @property {Record<string, number>} answeredBy x-tollgate-backend of a sample of requests to the three
 * @property {string[]} notes
 */
/** @typedef {RoutingResults | { skipped: string }} RoutingSection */

// The targets: three deployments cost no more than one (within noise), and the stream's
// time to first chunk with the read-ahead stays within 0.2 ms.
export const ROUTING_TARGETS = {
  /** Proxy CPU per request, three deployments over one: the noise seen between rounds. */
  cpuShareOverOne: 0.1,
  ttfcOverOneMs: 0.2,
};

const ms = (/** @type {number} */ value) => (Number.isFinite(value) ? value.toFixed(3) : '–');
const signedMs = (/** @type {number} */ value) =>
  Number.isFinite(value) ? `${value < 0 ? '−' : '+'}${ms(Math.abs(value))}` : '–';
const int = (/** @type {number} */ value) =>
  Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
const signedPct = (/** @type {number} */ value) =>
  Number.isFinite(value) ? `${value < 0 ? '−' : '+'}${Math.abs(value * 100).toFixed(1)} %` : '–';
const cpuUs = (/** @type {MeasuredRequests} */ run) => (run.serverCpu.proxyMs * 1000) / run.completedTotal;
/** @param {MeasuredRequests[]} runs */
const failures = (runs) => runs.reduce((sum, run) => sum + run.errors + run.non2xx, 0);
/** @param {MeasuredStreams[]} runs */
const streamProblems = (runs) => runs.reduce((sum, run) => sum + run.errors + run.missingDone, 0);
/** @param {MeasuredStreams[]} runs */
const ttfc = (runs) => summarize(runs.flatMap((run) => run.sequential.ttfcMs));

/**
 * @param {RoutingSection | undefined} routing
 * @returns {Array<{ name: string, threshold: string, measured: string, result: string }>}
 */
export function routingVerdicts(routing) {
  if (routing === undefined) return [];
  const names = [
    'Three deployments vs one: proxy CPU per request',
    'Three deployments vs one: stream TTFC p50 (read-ahead)',
  ];
  if (!('rateRuns' in routing)) {
    const failed = routing.skipped.startsWith('failed');
    return names.map((name) => ({
      name,
      threshold: '',
      measured: `section 8 ${failed ? '' : 'skipped: '}${routing.skipped}`,
      result: failed ? 'MISS' : 'n/a',
    }));
  }
  const one = median(routing.rateRuns.tollgate.map(cpuUs));
  const three = median(routing.rateRuns.tollgateThree.map(cpuUs));
  const cpuClean =
    failures(routing.rateRuns.tollgate) === 0 && failures(routing.rateRuns.tollgateThree) === 0;
  const ttfcOne = ttfc(routing.streamRuns.tollgate).p50;
  const ttfcThree = ttfc(routing.streamRuns.tollgateThree).p50;
  const streamClean =
    streamProblems(routing.streamRuns.tollgate) === 0 &&
    streamProblems(routing.streamRuns.tollgateThree) === 0;
  const note = (/** @type {boolean} */ clean) => (clean ? '' : ' (errors during the run: see section 8)');
  return [
    {
      name: `${names[0]} at ${int(routing.rate)} req/s`,
      threshold: `≤ +${(ROUTING_TARGETS.cpuShareOverOne * 100).toFixed(0)} % (noise)`,
      measured: `${int(three)} vs ${int(one)} µs: ${signedPct(three / one - 1)}${note(cpuClean)}`,
      result: three <= one * (1 + ROUTING_TARGETS.cpuShareOverOne) && cpuClean ? 'PASS' : 'MISS',
    },
    {
      name: `${names[1]}, sequential`,
      threshold: `≤ +${ms(ROUTING_TARGETS.ttfcOverOneMs)} ms`,
      measured: `${ms(ttfcThree)} vs ${ms(ttfcOne)} ms: ${signedMs(ttfcThree - ttfcOne)} ms${note(streamClean)}`,
      result: ttfcThree - ttfcOne <= ROUTING_TARGETS.ttfcOverOneMs && streamClean ? 'PASS' : 'MISS',
    },
  ];
}

/**
 * @param {RoutingSection | undefined} routing
 * @returns {string}
 */
export function routingSection(routing) {
  if (routing === undefined) return '';
  const title = '## 8. A model on three deployments vs one';
  if (!('rateRuns' in routing)) return [title, '', `Skipped: ${routing.skipped}.`, ''].join('\n');
  const rows = routing.targets.map(({ key, label }) => {
    const runs = routing.rateRuns[key];
    const streams = ttfc(routing.streamRuns[key]);
    return [
      `**${label}**${failures(runs) + streamProblems(routing.streamRuns[key]) > 0 ? ' ⚠' : ''}`,
      int(median(runs.map(cpuUs))),
      ms(median(runs.map((run) => run.latencyMs.p50))),
      ms(median(runs.map((run) => run.latencyMs.p99))),
      String(streams.count),
      ms(streams.p50),
      ms(streams.p99),
    ];
  });
  const headers = [
    'target',
    `proxy CPU µs/req at ${int(routing.rate)} req/s`,
    'p50 ms',
    'p99 ms',
    'streams',
    'TTFC p50 ms',
    'TTFC p99 ms',
  ];
  const spread = Object.entries(routing.answeredBy)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
  return [
    title,
    '',
    'The same model, on the mock, as one deployment (`tollgate`, a one-line model) and as three ' +
      '(`tollgate, 3 deployments`: three backends, weighted, `retry.attempts: 3`, a circuit per ' +
      'deployment, so every request takes the strategy, the circuit check and the attempt loop). ' +
      'Both gateways read ahead to the first event of a stream before answering: the read-ahead ' +
      'cannot be turned off, so its cost shows in section 3 (time to first chunk over the floor), ' +
      'not here. Alternating and rotating like sections 1–5; medians of the rounds.',
    '',
    `| ${headers.join(' | ')} |`,
    `| ${headers.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    `Answered by (a sample after the runs): ${spread || 'none'}.`,
    ...(routing.notes.length > 0 ? ['', ...routing.notes.map((note) => `- ${note}`)] : []),
    '',
  ].join('\n');
}
