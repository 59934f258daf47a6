import { type Command, Option } from 'commander';
import type { CacheQuery } from '../admin-types.js';
import { clientFor, confirmExists, emit, examples } from '../cli-context.js';
import { cacheStatsTable } from '../format.js';

interface ScopeOptions {
  team?: string;
  key?: string;
  global?: boolean;
}

interface PurgeOptions extends ScopeOptions {
  model?: string;
  all?: boolean;
}

/** `--team`, `--key` and `--global` each name one scope, so any two of them are a usage error. */
function scopeOptions(verb: string): Option[] {
  return [
    new Option('--team <id>', `${verb} this team's entries`).conflicts(['key', 'global']),
    new Option('--key <id>', `${verb} this key's entries`).conflicts(['team', 'global']),
    new Option('--global', `${verb} the entries every team shares`).conflicts(['team', 'key']),
  ];
}

function cacheQuery(options: ScopeOptions): CacheQuery {
  return {
    team_id: options.team,
    key_id: options.key,
    scope: options.global ? 'global' : undefined,
  };
}

function entries(count: number): string {
  return count === 1 ? '1 cache entry' : `${count} cache entries`;
}

export function registerCacheCommands(program: Command): void {
  const cache = program
    .command('cache')
    .description("inspect and empty the response cache, per team, per key, or the shared 'global' scope")
    .addHelpText(
      'after',
      examples([
        'tollgate cache stats',
        'tollgate cache stats --team team_0mxdutgxl000b7kq2vfz',
        'tollgate cache purge --team team_0mxdutgxl000b7kq2vfz --model gpt-4o-mini',
        'tollgate cache purge --all',
      ]),
    );

  const stats = cache
    .command('stats')
    .description('entries and bytes per cache scope (default: every scope that holds entries)');
  for (const option of scopeOptions('only')) stats.addOption(option);
  stats
    .addHelpText(
      'after',
      `\nIn the table BYTES is rounded (KiB, MiB...); --json gives the exact count.${examples([
        'tollgate cache stats',
        'tollgate cache stats --key 0mxdutgxm000sledsi',
        'tollgate cache stats --global --json',
      ])}`,
    )
    .action(async (options: ScopeOptions, command: Command) => {
      const client = clientFor(command);
      const response = await client.getCacheStats(cacheQuery(options));
      // A named scope is listed even when it holds nothing, so "empty" is every row at zero.
      if (response.data.data.every((row) => row.entries === 0)) await confirmExists(client, options);
      emit(command, response, (list) => cacheStatsTable(list.data));
    });

  const purge = cache
    .command('purge')
    .description('delete cached responses: of one scope, or with --all of every scope');
  for (const option of scopeOptions('purge')) purge.addOption(option);
  purge
    .option('--model <name>', 'only the entries of this public model name')
    .addOption(
      new Option(
        '--all',
        'purge every scope (required when no --team, --key or --global is given)',
      ).conflicts(['team', 'key', 'global']),
    )
    .addHelpText(
      'after',
      examples([
        'tollgate cache purge --team team_0mxdutgxl000b7kq2vfz',
        'tollgate cache purge --key 0mxdutgxm000sledsi --model gpt-4o-mini',
        'tollgate cache purge --global',
        'tollgate cache purge --all',
      ]),
    )
    .action(async (options: PurgeOptions, command: Command) => {
      const query = cacheQuery(options);
      if (!query.team_id && !query.key_id && !query.scope && !options.all) {
        // Emptying every team's cache should never be what a forgotten option does.
        command.error(
          'error: say what to purge: --team <id>, --key <id> or --global, or --all for every scope',
          { code: 'tollgate.nothingToPurge' },
        );
      }
      const client = clientFor(command);
      const response = await client.purgeCache({
        ...query,
        model: options.model,
        all: options.all === true,
      });
      if (response.data.deleted === 0) await confirmExists(client, options);
      emit(command, response, (result) => `Purged ${entries(result.deleted)}.`);
    });
}
