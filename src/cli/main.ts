#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { serve } from '../server.js';

const HELP = `Usage: tollgate [serve] [--config <file>]

Commands:
  serve              start the gateway (the default)

Options:
  -c, --config FILE  YAML or JSON config (also TOLLGATE_CONFIG); none: embedded defaults
  -h, --help         show this help
  -v, --version      print the version

Environment: PORT, HOST, REDIS_URL, LOG_LEVEL, LOG_PRETTY, OPENAI_API_KEY, OPENAI_BASE_URL
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const { values, positionals } = parseArgs({
  options: {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  },
  allowPositionals: true,
  strict: false,
});

const command = positionals[0] ?? 'serve';
if (values.help) {
  process.stdout.write(HELP);
} else if (values.version) {
  process.stdout.write(`${version()}\n`);
} else if (command === 'serve') {
  serve({ configPath: typeof values.config === 'string' ? values.config : undefined }).catch(
    (error: Error) => {
      process.stderr.write(`tollgate failed to start: ${error.message}\n`);
      process.exit(1);
    },
  );
} else {
  process.stderr.write(`tollgate: unknown command '${command}'\n\n${HELP}`);
  process.exit(2);
}
