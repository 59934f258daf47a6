// Load generator child. run.mjs forks one of these per measurement, so the client side of every
// measurement gets its own event loop and a fresh heap: it never competes with a server's event
// loop, and one measurement's garbage cannot pause the next. The parent sends exactly one job
// over IPC; the child answers with one result message and exits.
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
// @ts-expect-error autocannon ships no type declarations; the part used here is typed below.
import autocannonUntyped from 'autocannon';
import { Pool } from 'undici';
import { SampleBuffer, summarize } from './stats.mjs';

/**
 * The slice of autocannon's programmatic API this file uses.
 * @typedef {object} AutocannonInstance
 * @property {(event: 'response', listener: (client: unknown, statusCode: number, bytes: number,
 *   responseTimeMs: number) => void) => void} on
 * @typedef {(options: object, done: (error: Error | null, result: { errors: number, timeouts: number })
 *   => void) => AutocannonInstance} Autocannon
 */
const autocannon = /** @type {Autocannon} */ (autocannonUntyped);

/**
 * @typedef {object} RequestSpec
 * @property {string} origin e.g. http://127.0.0.1:9100
 * @property {string} path e.g. /v1/chat/completions
 * @property {string} body JSON request body
 * @property {Record<string, string>} headers
 */
/**
 * @typedef {RequestSpec & { kind: 'max', connections: number, durationSec: number }} MaxJob
 *   closed loop: autocannon with N connections as fast as they go
 * @typedef {RequestSpec & { kind: 'paced', rate: number, durationSec: number, warmupSec: number }} PacedJob
 *   open loop: requests sent on a fixed schedule, independent of responses
 * @typedef {RequestSpec & { kind: 'autocannon-rate', rate: number, connections: number, durationSec: number }} AutocannonRateJob
 *   autocannon's overallRate (kept for comparison, see run.mjs for why it is not the default)
 * @typedef {RequestSpec & { kind: 'streams', sequential: number, concurrent: number, concurrency: number }} StreamsJob
 * @typedef {MaxJob | PacedJob | AutocannonRateJob | StreamsJob} Job
 */
/**
 * @typedef {object} CpuUse
 * @property {number} userMs
 * @property {number} systemMs
 */
/**
 * @typedef {object} RequestRunResult
 * @property {'requests'} type
 * @property {number} ok 2xx responses counted in the window
 * @property {number} non2xx
 * @property {number} errors connection errors and timeouts
 * @property {number} durationSec measured window
 * @property {number} reqPerSec 2xx responses per second
 * @property {number} targetRate 0 for closed-loop runs
 * @property {number} completedTotal every response the job received, warm-up included (the
 *   denominator for the servers' CPU per request, which is measured over the whole job)
 * @property {import('./stats.mjs').Summary} latencyMs
 * @property {import('./stats.mjs').Summary} [sendLagMs] paced runs: how late requests left vs their schedule
 * @property {ClientStalls} [clientStalls] paced runs: the load generator's own pauses in the window
 * @property {CpuUse} loadgenCpu CPU this load generator used, to judge how much of the 2 cores it took
 * @property {number} processCpuMs all CPU this process used since it started (for the noise guard)
 */
/**
 * @typedef {object} StreamSamples
 * @property {number[]} ttfcMs time from sending the request to the first `data:` line
 * @property {number[]} totalMs time from sending the request to the end of the body
 */
/**
 * @typedef {object} StreamRunResult
 * @property {'streams'} type
 * @property {StreamSamples} sequential
 * @property {StreamSamples} concurrent
 * @property {number} errors
 * @property {number} minEvents fewest `data:` events in one stream (including [DONE])
 * @property {number} maxEvents
 * @property {number} usageChunks streams that carried a usage-only chunk the client did not ask for
 * @property {number} missingDone streams that ended without `data: [DONE]`
 * @property {number} streamsSent every stream asked for, the untimed ones included: what the
 *   proxy's CPU over the whole run was spent on
 * @property {CpuUse} loadgenCpu
 * @property {number} processCpuMs
 */

/**
 * @typedef {object} ClientStalls
 * @property {number} loopDelayMaxMs the longest this process's event loop was held (its own GC
 *   included): a response that arrived meanwhile was timed that much late
 * @property {number} loopDelayP99Ms
 * @property {number} gcMaxMs the longest garbage collection pause
 * @property {number} gcTotalMs
 * @property {number} gcCount
 */

/**
 * Watches this process's own pauses from now until stop(): a latency percentile that moves with
 * them measures the load generator, not the proxy (on 2 shared cores its young-generation
 * collections took 15-35 ms; see BENCHMARKS.md).
 */
function watchClientStalls() {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const gc = { maxMs: 0, totalMs: 0, count: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.maxMs = Math.max(gc.maxMs, entry.duration);
      gc.totalMs += entry.duration;
      gc.count += 1;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  delay.enable();
  /** @returns {ClientStalls} */
  const stop = () => {
    delay.disable();
    observer.disconnect();
    return {
      loopDelayMaxMs: delay.max / 1e6,
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      gcMaxMs: gc.maxMs,
      gcTotalMs: gc.totalMs,
      gcCount: gc.count,
    };
  };
  return { stop };
}

/** @returns {CpuUse} */
function cpuSince(/** @type {NodeJS.CpuUsage} */ start) {
  const used = process.cpuUsage(start);
  return { userMs: used.user / 1000, systemMs: used.system / 1000 };
}

/** @returns {number} */
function processCpuMs() {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/**
 * Closed loop at fixed concurrency: the max-throughput measurement. Latencies come from
 * autocannon's per-response event (float ms from hrtime) rather than its histogram, which
 * truncates to whole milliseconds.
 * @param {MaxJob | AutocannonRateJob} job
 * @returns {Promise<RequestRunResult>}
 */
async function runAutocannon(job) {
  const cpuStart = process.cpuUsage();
  const latencies = new SampleBuffer();
  let ok = 0;
  let non2xx = 0;
  const options = {
    url: job.origin + job.path,
    method: /** @type {const} */ ('POST'),
    headers: job.headers,
    body: job.body,
    connections: job.connections,
    pipelining: 1,
    duration: job.durationSec,
    timeout: 10,
    ...(job.kind === 'autocannon-rate' ? { overallRate: job.rate } : {}),
  };
  const startedAt = performance.now();
  /** @type {{ errors: number, timeouts: number }} */
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, finished) => (error ? reject(error) : resolve(finished)));
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok += 1;
        latencies.push(responseTimeMs);
      } else {
        non2xx += 1;
      }
    });
  });
  const durationSec = (performance.now() - startedAt) / 1000;
  return {
    type: 'requests',
    ok,
    non2xx,
    errors: result.errors + result.timeouts,
    durationSec,
    reqPerSec: ok / durationSec,
    targetRate: job.kind === 'autocannon-rate' ? job.rate : 0,
    completedTotal: ok + non2xx,
    latencyMs: summarize(latencies.view()),
    loadgenCpu: cpuSince(cpuStart),
    processCpuMs: processCpuMs(),
  };
}

/**
 * Open loop at a fixed rate. Every millisecond tick sends however many requests are due by
 * the wall clock, so 500 req/s is one request every 2 ms and 2,000 req/s two per ms, instead
 * of autocannon's per-connection quota fired back to back at each 1 s boundary. A request is
 * timed from the moment it is handed to the pool (queueing in the pool counts, so a server that
 * falls behind shows it in its latency) to the last byte of the response.
 * @param {PacedJob} job
 * @returns {Promise<RequestRunResult>}
 */
async function runPaced(job) {
  const pool = new Pool(job.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
  const requestOptions = {
    path: job.path,
    method: /** @type {const} */ ('POST'),
    headers: job.headers,
    body: job.body,
  };
  // Request i is due at i / rate seconds. The first ones are warm-up; counting by schedule (not by
  // when a tick happened to run) keeps the measured window exactly durationSec of requests.
  const intervalMs = 1000 / job.rate;
  const firstCounted = Math.ceil(job.warmupSec * job.rate);
  const total = firstCounted + Math.round(job.durationSec * job.rate);
  const latencies = new SampleBuffer(total - firstCounted);
  const sendLag = new SampleBuffer(total - firstCounted);
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let countedInFlight = 0;
  let completed = 0; // including warm-up: the denominator for server CPU per request
  let cpuStart = process.cpuUsage();
  let firstCountedSentAt = 0;
  let lastSentAt = 0;
  /** @type {{ stop: () => ClientStalls } | undefined} */
  let stalls;

  /** @param {boolean} counted whether this request falls inside the measured window */
  const fire = (counted) => {
    const sentAt = performance.now();
    if (counted) countedInFlight += 1;
    pool
      .request(requestOptions)
      .then(async ({ statusCode, body }) => {
        await body.arrayBuffer();
        return statusCode;
      })
      .then(
        (statusCode) => {
          completed += 1;
          if (!counted) return;
          countedInFlight -= 1;
          if (statusCode >= 200 && statusCode < 300) {
            ok += 1;
            latencies.push(performance.now() - sentAt);
          } else {
            non2xx += 1;
          }
        },
        () => {
          if (!counted) return;
          countedInFlight -= 1;
          errors += 1;
        },
      );
  };

  const startedAt = performance.now();
  await new Promise((resolve) => {
    let sent = 0;
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - startedAt) / intervalMs) + 1);
      while (sent < due) {
        const counted = sent >= firstCounted;
        if (sent === firstCounted) {
          firstCountedSentAt = now;
          cpuStart = process.cpuUsage();
          stalls = watchClientStalls();
        }
        // How late this request leaves compared with its schedule: a busy load generator would
        // otherwise quietly turn an even rate into bursts.
        if (counted) sendLag.push(now - (startedAt + sent * intervalMs));
        fire(counted);
        lastSentAt = now;
        sent += 1;
      }
      if (sent >= total) resolve(undefined);
      else setTimeout(tick, 1);
    };
    tick();
  });
  // Let the last requests finish (bounded), so the tail of the window is not silently dropped.
  const drainDeadline = performance.now() + 10_000;
  while (countedInFlight > 0 && performance.now() < drainDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const loadgenCpu = cpuSince(cpuStart);
  const clientStalls = stalls?.stop();
  // One interval is added because n requests sent at the schedule span (n - 1) intervals.
  const durationSec = (lastSentAt - firstCountedSentAt + intervalMs) / 1000;
  await pool.destroy();
  return {
    type: 'requests',
    ok,
    non2xx,
    errors: errors + countedInFlight,
    durationSec,
    reqPerSec: ok / durationSec,
    targetRate: job.rate,
    completedTotal: completed,
    latencyMs: summarize(latencies.view()),
    sendLagMs: summarize(sendLag.view()),
    ...(clientStalls ? { clientStalls } : {}),
    loadgenCpu,
    processCpuMs: processCpuMs(),
  };
}

/**
 * @typedef {object} OneStream
 * @property {number} ttfcMs
 * @property {number} totalMs
 * @property {number} events
 * @property {boolean} sawUsageChunk
 * @property {boolean} sawDone
 */

/**
 * One streamed chat completion, timed from dispatch to the first `data:` bytes and to the end.
 * @param {Pool} pool
 * @param {StreamsJob} job
 * @returns {Promise<OneStream>}
 */
async function oneStream(pool, job) {
  const sentAt = performance.now();
  const { statusCode, body } = await pool.request({
    path: job.path,
    method: 'POST',
    headers: job.headers,
    body: job.body,
  });
  let ttfcMs = Number.NaN;
  let text = '';
  for await (const part of body) {
    text += part.toString('utf8');
    // The first chunk normally arrives whole, but a proxy may split it; look at the text so far.
    if (Number.isNaN(ttfcMs) && text.includes('data:')) ttfcMs = performance.now() - sentAt;
  }
  const totalMs = performance.now() - sentAt;
  if (statusCode !== 200) throw new Error(`status ${statusCode}: ${text.slice(0, 200)}`);
  const events = text.split('\n\n').filter((event) => event.startsWith('data:'));
  return {
    ttfcMs,
    totalMs,
    events: events.length,
    sawUsageChunk: events.some((event) => event.includes('"choices":[]')),
    sawDone: events.at(-1) === 'data: [DONE]',
  };
}

/** Streams sent before the timed ones in each streams run. */
const UNTIMED_STREAMS = 2;

/**
 * Sequential streams show the per-stream overhead without queueing; concurrent ones show how it
 * holds up when the proxy interleaves many streams.
 * @param {StreamsJob} job
 * @returns {Promise<StreamRunResult>}
 */
async function runStreams(job) {
  const cpuStart = process.cpuUsage();
  const pool = new Pool(job.origin, { connections: Math.max(1, job.concurrency), keepAliveTimeout: 60_000 });
  /** @type {StreamRunResult} */
  const result = {
    type: 'streams',
    sequential: { ttfcMs: [], totalMs: [] },
    concurrent: { ttfcMs: [], totalMs: [] },
    errors: 0,
    minEvents: Number.POSITIVE_INFINITY,
    maxEvents: 0,
    usageChunks: 0,
    missingDone: 0,
    streamsSent: UNTIMED_STREAMS + job.sequential + job.concurrent,
    loadgenCpu: { userMs: 0, systemMs: 0 },
    processCpuMs: 0,
  };
  /** @param {StreamSamples} into */
  const runOne = async (into) => {
    try {
      const stream = await oneStream(pool, job);
      into.ttfcMs.push(stream.ttfcMs);
      into.totalMs.push(stream.totalMs);
      result.minEvents = Math.min(result.minEvents, stream.events);
      result.maxEvents = Math.max(result.maxEvents, stream.events);
      if (stream.sawUsageChunk) result.usageChunks += 1;
      if (!stream.sawDone) result.missingDone += 1;
    } catch {
      result.errors += 1;
    }
  };
  // Untimed streams first: they open the connection and warm this process's code paths.
  for (let index = 0; index < UNTIMED_STREAMS; index += 1) await oneStream(pool, job).catch(() => undefined);
  for (let index = 0; index < job.sequential; index += 1) await runOne(result.sequential);
  let remaining = job.concurrent;
  const worker = async () => {
    while (remaining > 0) {
      remaining -= 1;
      await runOne(result.concurrent);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, job.concurrency) }, worker));
  await pool.close();
  result.loadgenCpu = cpuSince(cpuStart);
  result.processCpuMs = processCpuMs();
  if (result.maxEvents === 0) result.minEvents = 0;
  return result;
}

/**
 * @param {Job} job
 * @returns {Promise<RequestRunResult | StreamRunResult>}
 */
function runJob(job) {
  switch (job.kind) {
    case 'max':
    case 'autocannon-rate':
      return runAutocannon(job);
    case 'paced':
      return runPaced(job);
    case 'streams':
      return runStreams(job);
    default:
      return Promise.reject(new Error(`unknown job ${JSON.stringify(job)}`));
  }
}

// The parent going away (crash, SIGKILL) closes the IPC channel: do not linger as an orphan.
process.on('disconnect', () => process.exit(1));
process.once('message', (/** @type {Job} */ job) => {
  runJob(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (error) => process.send?.({ ok: false, error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
