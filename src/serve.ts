import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { ExitCode } from './cli/exit-codes.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import type { Config } from './config/schema.js';
import { ConnectionReaper } from './http/connection-reaper.js';
import { createLogger } from './http/logger.js';
import { StreamShutdown } from './http/stream-shutdown.js';
import { ClusterPrimary } from './runtime/cluster-primary.js';
import { releaseBootMemory } from './runtime/release-boot-memory.js';
import { lostKeptWrites } from './store/kept-for-retry.js';

/** Signals this close together are one stop request delivered twice (see `stop`). */
const DUPLICATE_SIGNAL_MS = 1_000;
/**
 * After the grace period, cut streams still settle and record, usage is written and the store
 * closes: this much more, and the process exits whatever is still pending (a store that does
 * not answer, a log destination that does not take writes).
 */
const HARD_STOP_AFTER_GRACE_MS = 5_000;
/** The last log lines get this long to reach stdout before the process exits without them. */
const LOG_FLUSH_LIMIT_MS = 1_000;
/**
 * After the grace period, streams still relayed get this long to write their last event (an
 * error saying the gateway stops) before the connections left are closed: a bound for sockets
 * that take no more writes (a client that stopped reading), not a wait the others see.
 */
const STREAM_END_LIMIT_MS = 1_000;

export interface ServeOptions {
  configPath?: string | undefined;
}

/**
 * Loads config, builds the app, listens, and drains on SIGTERM/SIGINT: stop accepting,
 * let in-flight requests and streams finish until the grace period ends, then end the streams
 * left with an error event each and close. Exits 0 once stopped, ExitCode.lostWrites if it gave
 * up on writes kept for Redis while stopping (a supervisor cannot read logs), 1 if it could not stop.
 * With `server.workers` above 1 this process becomes the cluster's primary instead (it forks
 * workers that each run this function as a worker, and resolves to undefined).
 */
export async function serve(options: ServeOptions = {}): Promise<FastifyInstance | undefined> {
  let config: Config;
  try {
    config = loadConfig({ path: options.configPath });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${workerPrefix()}${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const { logger: root, flush } = createLogger(config.log);
  const exit = exitAfterFlush(flush);
  if (cluster.isPrimary && config.server.workers > 1) {
    servePrimary(config, root.child({ role: 'primary', pid: process.pid }), exit);
    return undefined;
  }
  // A worker of ours (under another cluster, e.g. pm2's, with workers: 1 this is a single gateway).
  const worker = cluster.isWorker && config.server.workers > 1 ? cluster.worker : undefined;
  // Which worker wrote a line (its id counts restarts; the pid matches `ps` and the primary's lines).
  const logger = worker ? root.child({ worker: worker.id, pid: process.pid }) : root;
  // The admin key is generated and printed by at most one worker: the store keeps the first
  // hash set (HSETNX in Redis), and only the worker whose key that is is told it generated one.
  const streamShutdown = new StreamShutdown();
  const app = await buildApp(config, {
    logger,
    streamShutdown,
    onAdminKeyGenerated: (key) => announceAdminKey(key, config),
  });
  if (config.auth === 'none' && !worker) warnAuthOff(app.log);
  const connections = new ConnectionReaper(app.server);
  let stoppingSince: number | undefined;
  const stop = (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      // One stop request can arrive twice: `npm start` forwards the signal it gets to us, and a
      // supervisor or a terminal that signals the whole process group reaches us directly too.
      // Only a signal sent after that (a person asking again) means "exit now".
      if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
      app.log.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stoppingSince = Date.now();
    // Writes lost before the stop were logged then; the exit code tells of this stop's alone.
    const lostBefore = lostKeptWrites();
    app.log.info(
      { signal, grace_ms: config.server.shutdownGraceMs },
      'shutting down: draining in-flight requests',
    );
    const deadline = setTimeout(() => {
      app.log.warn(
        { streams: streamShutdown.streams },
        'grace period over: ending streams with an error event, then closing remaining connections',
      );
      void streamShutdown
        .stop(STREAM_END_LIMIT_MS, config.server.bodyLimit)
        .then(() => app.server.closeAllConnections());
    }, config.server.shutdownGraceMs);
    deadline.unref();
    // Not unref'd: whatever stopping still waits on, the process ends here.
    setTimeout(() => {
      app.log.error('could not stop cleanly in time: exiting now');
      exit(1);
    }, config.server.shutdownGraceMs + HARD_STOP_AFTER_GRACE_MS);
    // Draining waits for requests, not for connections that carry none (see ConnectionReaper).
    connections.start();
    app.close().then(
      () => {
        const lost = lostKeptWrites() - lostBefore;
        if (lost === 0) {
          app.log.info('stopped');
          exit(0);
          return;
        }
        app.log.error(
          { lost_writes: lost, exit_code: ExitCode.lostWrites },
          'stopped, but lost writes kept while Redis was unreachable: exiting with a failure code',
        );
        exit(ExitCode.lostWrites);
      },
      (error: Error) => {
        app.log.error({ err: { message: error.message } }, 'error while stopping');
        exit(1);
      },
    );
  };
  // `on`, not `once`: a second signal must reach `stop` (exit now) rather than Node's default.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await app.ready();
  await releaseBootMemory();
  await app.listen({ host: config.server.host, port: config.server.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  if (worker) {
    // The primary says `tollgate is listening` once every worker is.
    app.log.info({ listen: `${config.server.host}:${port}` }, 'worker is listening');
    return app;
  }
  app.log.info(
    {
      url: `http://${config.server.host === '0.0.0.0' ? 'localhost' : config.server.host}:${port}/v1`,
      // The URL is for trying it on this machine; `listen` says who else can reach it.
      listen: `${config.server.host}:${port}`,
      models: Object.keys(config.models),
      store: config.redis ? 'redis' : 'memory',
    },
    'tollgate is listening',
  );
  return app;
}

/** Ends the process once the buffered log lines are out, or after LOG_FLUSH_LIMIT_MS without them. */
function exitAfterFlush(flush: () => Promise<void>): (code: number) => void {
  let exiting = false;
  return (code) => {
    if (exiting) return;
    exiting = true;
    let timer: NodeJS.Timeout | undefined;
    const flushed = Promise.race([
      flush(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, LOG_FLUSH_LIMIT_MS);
      }),
    ]);
    void flushed.then(() => {
      clearTimeout(timer);
      process.exit(code);
    });
  };
}

function warnAuthOff(log: { warn: (message: string) => void }): void {
  log.warn('auth is off (auth: none / TOLLGATE_AUTH=none): anyone who can reach /v1 can use every model');
}

/** `server.workers > 1`: this process forks and minds the workers, and answers no requests. */
function servePrimary(config: Config, logger: Logger, exit: (code: number) => void): void {
  const primary = new ClusterPrimary({
    workers: config.server.workers,
    logger,
    workerStopLimitMs: config.server.shutdownGraceMs + HARD_STOP_AFTER_GRACE_MS,
    onListening: (address) => {
      const host = config.server.host;
      logger.info(
        {
          url: `http://${host === '0.0.0.0' ? 'localhost' : host}:${address.port}/v1`,
          listen: `${host}:${address.port}`,
          workers: config.server.workers,
          models: Object.keys(config.models),
          store: config.redis ? 'redis' : 'memory',
        },
        'tollgate is listening',
      );
    },
    exit,
  });
  if (config.auth === 'none') warnAuthOff(logger);
  process.on('SIGTERM', (signal) => primary.stop(signal));
  process.on('SIGINT', (signal) => primary.stop(signal));
  primary.start();
}

/**
 * The generated admin key is shown exactly once, on the terminal rather than in the JSON logs
 * (which are shipped and kept): only its hash is stored, so this is the operator's one chance.
 */
function announceAdminKey(key: string, config: Config): void {
  const host = config.server.host === '0.0.0.0' ? 'localhost' : config.server.host;
  const base = `http://${host}:${config.server.port}`;
  const auth = '-H "Authorization: Bearer $TOLLGATE_ADMIN_KEY" -H "content-type: application/json"';
  process.stderr.write(
    [
      '',
      '================================================================================',
      ' Tollgate generated an admin key. It is shown once; only its hash is stored.',
      ' Keep it, or set TOLLGATE_ADMIN_KEY to one of your own.',
      '',
      `   export TOLLGATE_ADMIN_KEY=${key}`,
      '',
      ' Then create a team and a key for it (the answer holds the key, shown once):',
      '',
      `   TEAM=$(curl -s ${base}/admin/teams ${auth} -d '{"name":"my-team"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)`,
      `   curl -s ${base}/admin/keys ${auth} -d "{\\"team_id\\":\\"$TEAM\\",\\"name\\":\\"my-key\\"}"`,
      '================================================================================',
      '',
    ].join('\n'),
  );
}

const USAGE = `Usage: node dist/server.js [--config <file>]

Starts the gateway.

Options:
  -c, --config <file>  YAML or JSON config (also TOLLGATE_CONFIG); none: embedded defaults
  -h, --help           show this help

Environment: TOLLGATE_CONFIG, PORT, HOST, REDIS_URL, TOLLGATE_DATA_DIR, TOLLGATE_ADMIN_KEY,
  TOLLGATE_AUTH=none, LOG_LEVEL, LOG_PRETTY, LOG_REQUESTS; with no config file, OPENAI_API_KEY,
  OPENAI_BASE_URL
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
} as const;

const MISSING_CONFIG = '--config needs a value: the path of a YAML or JSON file';

function parseOptions(args: string[]) {
  return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
}

type CommandLine = { help: true } | { help: false; configPath: string | undefined };

/**
 * The arguments, or a usage problem in our words: node's own (ERR_PARSE_ARGS_*) come with a stack
 * trace. A stray argument is refused rather than taken as the config file: `--config` is the one
 * way to name it, as in `tollgate serve`, and a typo must not boot on the embedded defaults.
 */
export function parseCommandLine(args: string[]): CommandLine | { problem: string } {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(args);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec((error as Error).message)?.[1] ?? 'given';
      return { problem: `unknown option '${option}'` };
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return { problem: MISSING_CONFIG };
    throw error;
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  // `--config=` or `--config ""` would otherwise mean no file at all: the embedded defaults.
  if (values.config === '') return { problem: MISSING_CONFIG };
  const [extra] = positionals;
  if (extra !== undefined)
    return {
      problem: `unexpected argument '${extra}'${values.config === undefined ? ` (for a config file: --config ${extra})` : ''}`,
    };
  return { help: false, configPath: values.config };
}

/** `node dist/server.js [--config file]`: serve, or say why not and exit 1 (2 for a usage error). */
export async function serveFromCommandLine(args: string[]): Promise<void> {
  const command = parseCommandLine(args);
  if ('problem' in command) {
    process.stderr.write(`tollgate: ${command.problem}\n${USAGE.split('\n')[0]}\n(--help for more)\n`);
    process.exit(ExitCode.usage);
  }
  if (command.help) {
    process.stdout.write(USAGE);
    return;
  }
  await serve({ configPath: command.configPath }).catch((error: Error) => {
    process.stderr.write(`${workerPrefix()}tollgate failed to start: ${error.message}\n`);
    process.exit(1);
  });
}

/**
 * A worker that cannot boot has no logger yet: its reason goes to stderr as text, which with
 * several workers dying together must still say whose it is (the primary's lines name the pid).
 */
function workerPrefix(): string {
  return cluster.isWorker && cluster.worker ? `[worker ${cluster.worker.id}, pid ${process.pid}] ` : '';
}
