// Section 9's HTTP client: chat completions against a gateway whose model runs in-process
// (llama-cpp backend). Forked fresh for every measurement like the load generator (one job in,
// one result out over IPC), so the client's CPU never lands in the gateway's process.
//
// Jobs:
//   { kind: 'sequential', origin, apiKey, gatewayPid, blocks, requests, warmup }
//     one request at a time on one keep-alive connection, block by block; the gateway's CPU is
//     read from /proc before and after each block
//   { kind: 'burst', origin, apiKey, adminKey, body, concurrency, bursts, warmupBursts }
//     `concurrency` requests sent at once (one connection each), `bursts` times in a row; the
//     gateway's /admin/metrics is read after the warm-up bursts and after the timed ones
import { Client, Pool } from 'undici';
import { readCpuMs } from './procs.mjs';

const CHAT_PATH = '/v1/chat/completions';

/**
 * @typedef {object} ClientBlock
 * @property {string} label
 * @property {string} body JSON of the chat request
 * @property {boolean} stream
 * @property {number} expectTokens completion tokens every answer must report
 */
/**
 * @typedef {object} Answer
 * @property {number} status
 * @property {number} ms from handing the request to undici to the body's last byte
 * @property {string} text the answer's content (joined deltas when streamed)
 * @property {number} completionTokens from usage; NaN when missing
 * @property {number} events `data:` events (streams)
 * @property {string | null} retryAfter
 * @property {number} endedAt performance.now() at the last byte
 */

/** @returns {number} */
function processCpuMs() {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
}

/**
 * @param {Client | Pool} client
 * @param {string} apiKey
 * @param {string} body
 * @param {boolean} stream
 * @returns {Promise<Answer>}
 */
async function post(client, apiKey, body, stream) {
  const begin = performance.now();
  const response = await client.request({
    path: CHAT_PATH,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const raw = await response.body.text();
  const endedAt = performance.now();
  const retryAfter = response.headers['retry-after'];
  const answer = {
    status: response.statusCode,
    ms: endedAt - begin,
    text: '',
    completionTokens: Number.NaN,
    events: 0,
    retryAfter: retryAfter === undefined ? null : String(retryAfter),
    endedAt,
  };
  if (response.statusCode !== 200) return { ...answer, text: raw.slice(0, 300) };
  // Parsed after the clock stopped: the client's parsing is not the gateway's time.
  if (!stream) {
    const json = JSON.parse(raw);
    return {
      ...answer,
      text: String(json.choices?.[0]?.message?.content ?? ''),
      completionTokens: Number(json.usage?.completion_tokens),
    };
  }
  const events = raw.split('\n\n').filter((event) => event.startsWith('data: '));
  let text = '';
  let completionTokens = Number.NaN;
  for (const event of events) {
    const data = event.slice('data: '.length);
    if (data === '[DONE]') continue;
    const chunk = JSON.parse(data);
    text += chunk.choices?.[0]?.delta?.content ?? '';
    if (chunk.usage) completionTokens = Number(chunk.usage.completion_tokens);
  }
  return { ...answer, text, completionTokens, events: events.length };
}

/**
 * @param {{ origin: string, apiKey: string, gatewayPid: number, blocks: ClientBlock[], requests: number,
 *   warmup: number }} job
 */
async function sequential(job) {
  const client = new Client(job.origin, { pipelining: 1 });
  for (const block of job.blocks)
    for (let index = 0; index < job.warmup; index += 1)
      await post(client, job.apiKey, block.body, block.stream);
  /** @type {Record<string, { latencyMs: number[], gatewayCpuMs: number, wallMs: number, failures: string[],
   *   wrongTokens: number, text: string, events: number }>} */
  const blocks = {};
  for (const block of job.blocks) {
    const latencyMs = [];
    /** @type {string[]} */
    const failures = [];
    let wrongTokens = 0;
    let last = /** @type {Answer | null} */ (null);
    const cpuBefore = readCpuMs(job.gatewayPid);
    const startedAt = performance.now();
    for (let index = 0; index < job.requests; index += 1) {
      const answer = await post(client, job.apiKey, block.body, block.stream);
      if (answer.status !== 200) failures.push(`${answer.status} ${answer.text}`);
      else if (answer.completionTokens !== block.expectTokens) wrongTokens += 1;
      latencyMs.push(answer.ms);
      last = answer;
    }
    blocks[block.label] = {
      latencyMs,
      gatewayCpuMs: readCpuMs(job.gatewayPid) - cpuBefore,
      wallMs: performance.now() - startedAt,
      failures: failures.slice(0, 5),
      wrongTokens,
      text: last?.text ?? '',
      events: last?.events ?? 0,
    };
  }
  await client.close();
  return { blocks, processCpuMs: processCpuMs() };
}

/**
 * @param {string} origin
 * @param {string} adminKey
 */
async function metricsText(origin, adminKey) {
  const response = await fetch(`${origin}/admin/metrics`, {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /admin/metrics answered ${response.status}: ${text}`);
  return text;
}

/**
 * @param {{ origin: string, apiKey: string, adminKey: string, body: string, concurrency: number,
 *   bursts: number, warmupBursts: number }} job
 */
async function burst(job) {
  const pool = new Pool(job.origin, { connections: job.concurrency, pipelining: 1 });
  const once = async () => {
    const sentAt = performance.now();
    const answers = await Promise.all(
      Array.from({ length: job.concurrency }, () => post(pool, job.apiKey, job.body, false)),
    );
    return answers.map((answer) => ({
      status: answer.status,
      ms: answer.ms,
      endedMs: answer.endedAt - sentAt,
      retryAfter: answer.retryAfter,
      completionTokens: answer.completionTokens,
    }));
  };
  // Opens the pool's connections, so a burst's requests all leave at once.
  for (let index = 0; index < job.warmupBursts; index += 1) await once();
  const metricsBefore = await metricsText(job.origin, job.adminKey);
  const bursts = [];
  for (let index = 0; index < job.bursts; index += 1) bursts.push(await once());
  const metricsAfter = await metricsText(job.origin, job.adminKey);
  await pool.close();
  return { bursts, metricsBefore, metricsAfter, processCpuMs: processCpuMs() };
}

/** @param {{ kind: string }} job */
function runJob(job) {
  // The parent built the job for its kind: trusted as such.
  const untyped = /** @type {unknown} */ (job);
  if (job.kind === 'sequential') return sequential(/** @type {Parameters<typeof sequential>[0]} */ (untyped));
  if (job.kind === 'burst') return burst(/** @type {Parameters<typeof burst>[0]} */ (untyped));
  return Promise.reject(new Error(`unknown job ${JSON.stringify(job)}`));
}

// The parent going away (crash, SIGKILL) closes the IPC channel: do not linger as an orphan.
process.on('disconnect', () => process.exit(1));
process.once('message', (/** @type {{ kind: string }} */ job) => {
  runJob(job).then(
    (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
    (error) => process.send?.({ ok: false, error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
