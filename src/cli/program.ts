import { Command, CommanderError, Option } from 'commander';
import {
  AdminApiError,
  GatewayUnreachableError,
  NotAdminApiError,
  UnsendableAdminKeyError,
} from './admin-client.js';
import { globalOptions, packageVersion } from './cli-context.js';
import { registerCacheCommands } from './commands/cache.js';
import { registerDeploymentsCommand } from './commands/deployments.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerTeamsCommands } from './commands/teams.js';
import { registerUsageCommands } from './commands/usage.js';
import { EXIT_CODES_HELP, ExitCode, exitCodeFor } from './exit-codes.js';
import { errorLine } from './format.js';

// `tollgate keys list | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

import { DEFAULT_URL, parseTimeoutMs, parseUrl } from './option-parsers.js';

/** What the gateway reads at boot (src/config/load-config.ts), for `serve`'s help and the top level's. */
const SERVE_ENVIRONMENT = `Environment (serve):
  TOLLGATE_CONFIG, PORT, HOST, REDIS_URL, TOLLGATE_DATA_DIR, TOLLGATE_ADMIN_KEY, TOLLGATE_AUTH=none,
  LOG_LEVEL, LOG_PRETTY, LOG_REQUESTS; with no config file, OPENAI_API_KEY, OPENAI_BASE_URL`;

/**
 * The program's options that only the admin commands use. Commander takes them with any command,
 * serve (the default one) included, where they mean nothing: a gateway started with `--admin-key`
 * would ignore it and generate a key of its own. Given in the environment they stay fine: there
 * TOLLGATE_ADMIN_KEY is the gateway's own key, and TOLLGATE_URL may be exported for the CLI.
 */
const CLIENT_ONLY_OPTIONS: Array<[name: string, flag: string]> = [
  ['adminKey', '--admin-key'],
  ['url', '--url'],
  ['json', '--json'],
  ['timeout', '--timeout'],
];

const ADMIN_KEY_SOURCES = 'TOLLGATE_ADMIN_KEY or admin.key in the config';

function refuseClientOptions(program: Command): void {
  const given = CLIENT_ONLY_OPTIONS.filter(([name]) => program.getOptionValueSource(name) === 'cli').map(
    ([, flag]) => flag,
  );
  if (given.length === 0) return;
  const what = `${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} for the admin commands, not serve`;
  const how = given.includes('--admin-key')
    ? `give the gateway its admin key with ${ADMIN_KEY_SOURCES}`
    : given.includes('--url')
      ? 'the gateway listens where server.host and server.port in the config (or HOST and PORT) say'
      : 'serve takes only --config';
  const message = `error: ${what}: ${how}`;
  // One line, without commander's "(add --help for usage)": the line says what to do instead.
  process.stderr.write(`${message}\n`);
  throw new CommanderError(ExitCode.usage, 'tollgate.clientOptionOnServe', message);
}

/** What to try next for the API errors whose message alone does not say. */
const HINTS: Record<string, string> = {
  team_has_active_keys: "add --force to revoke the team's active keys and delete it",
  invalid_admin_key: 'check TOLLGATE_ADMIN_KEY or --admin-key',
};

function buildProgram(): Command {
  const program = new Command('tollgate')
    .description('Tollgate, an OpenAI-compatible API gateway: run it, and manage its teams, keys and cache.')
    .version(packageVersion(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    // Thrown instead of exiting, so every usage error leaves through one place, with exit 2.
    .exitOverride()
    // Older commanders ignore surplus arguments; a stray one is a typo worth stopping for.
    .allowExcessArguments(false)
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .addOption(
      new Option('--url <url>', 'the gateway to manage')
        .env('TOLLGATE_URL')
        .default(DEFAULT_URL)
        .argParser(parseUrl),
    )
    .addOption(
      new Option('--admin-key <key>', 'admin key (prefer the variable: arguments show up in ps)').env(
        'TOLLGATE_ADMIN_KEY',
      ),
    )
    .option('--json', "print the API's JSON response as is (for scripts)")
    .addOption(
      new Option('--timeout <duration>', 'give up on a gateway that has not answered after this long')
        .default(30_000, '30s')
        .argParser(parseTimeoutMs),
    )
    .addHelpText(
      'after',
      `
Examples:
  $ tollgate --config tollgate.yaml
  $ export TOLLGATE_URL=http://gateway:8080 TOLLGATE_ADMIN_KEY=...
  $ tollgate teams create --name research --models gpt-4o,gpt-4o-mini
  $ tollgate keys create --team team_0mxdutgxl000b7kq2vfz --name ci --expires-at +90d

${EXIT_CODES_HELP}

${SERVE_ENVIRONMENT}
`,
    );

  program
    .command('serve', { isDefault: true })
    .description('start the gateway (the default command)')
    .option('-c, --config <file>', 'YAML or JSON config (also TOLLGATE_CONFIG); none: embedded defaults')
    // Anything left over means a mistyped command, which reaches here because serve is the
    // default; commander's "too many arguments for 'serve'" would point at the wrong thing.
    .allowExcessArguments(true)
    // The program's options are the admin commands' (refused here): listing them would say otherwise.
    .configureHelp({ showGlobalOptions: false, sortSubcommands: false })
    .addHelpText(
      'after',
      `
The gateway's admin key: ${ADMIN_KEY_SOURCES}; without either, the gateway
generates one at its first start and prints it.

${SERVE_ENVIRONMENT}

Examples:
  $ tollgate serve
  $ tollgate serve --config tollgate.yaml
`,
    )
    .action(async (options: { config?: string }, command: Command) => {
      const [extra] = command.args;
      if (extra !== undefined && program.args[0] === 'serve') {
        command.error(`error: unexpected argument '${extra}'`, { code: 'commander.excessArguments' });
      } else if (extra !== undefined) {
        program.error(`error: unknown command '${extra}'`, { code: 'commander.unknownCommand' });
      }
      refuseClientOptions(program);
      // Loaded here, not at the top: the admin commands should not pay for booting Fastify.
      const { serve } = await import('../serve.js');
      await serve({ configPath: options.config }).catch((error: Error) => {
        process.stderr.write(`tollgate failed to start: ${error.message}\n`);
        process.exit(1);
      });
    });

  registerTeamsCommands(program);
  registerKeysCommands(program);
  registerUsageCommands(program);
  registerCacheCommands(program);
  registerDeploymentsCommand(program);
  return program;
}

/** Reports an error the way scripts and people both rely on: one line on stderr, a fixed exit status. */
function report(error: unknown, program: Command): number {
  if (error instanceof CommanderError) {
    // Commander has printed its own message (or the help, or the version) already.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (error instanceof AdminApiError) {
    process.stderr.write(errorLine(error.message, { code: error.code, status: error.status }));
    const hint =
      error.status === 401 && !globalOptions(program).adminKey
        ? 'no admin key was given: set TOLLGATE_ADMIN_KEY or pass --admin-key'
        : HINTS[error.code ?? ''];
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    return exitCodeFor(error);
  }
  if (error instanceof NotAdminApiError) {
    process.stderr.write(errorLine(error.message, { code: error.code, status: error.status }));
    process.stderr.write(`hint: ${error.hint}\n`);
    return exitCodeFor(error);
  }
  if (error instanceof UnsendableAdminKeyError) {
    // Never the key itself, nor where in it the odd character is: the line may end up in a log.
    const source = program.getOptionValueSource('adminKey') === 'env' ? 'TOLLGATE_ADMIN_KEY' : '--admin-key';
    process.stderr.write(
      errorLine(
        `the admin key in ${source} cannot be sent: it holds a character an HTTP header cannot carry (only Latin-1, no line breaks); check it was copied whole and right`,
        {},
      ),
    );
    return ExitCode.usage;
  }
  if (error instanceof GatewayUnreachableError) {
    process.stderr.write(errorLine(error.message, {}));
    return exitCodeFor(error);
  }
  if (error instanceof TypeError) {
    // Reading a field the answer lacked: the server answered 2xx JSON, but not as our admin API.
    const url = globalOptions(program).url;
    process.stderr.write(
      errorLine(
        // The message too: the same error is what a fault of the CLI itself would throw.
        `the server at ${url} answered in a shape this CLI does not know (${error.message}): is it a Tollgate gateway of this version?`,
        {},
      ),
    );
    return ExitCode.apiError;
  }
  process.stderr.write(errorLine(error instanceof Error ? error.message : String(error), {}));
  return ExitCode.apiError;
}

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (error) {
  // exitCode, not exit(): let piped stdout drain before the process ends.
  process.exitCode = report(error, program);
}
