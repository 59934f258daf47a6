import { type Command, Option } from 'commander';
import type { CreateKeyRequest, Metadata, UpdateKeyRequest } from '../admin-types.js';
import { clientFor, confirmExists, emit, examples, fetchPages, morePagesHint } from '../cli-context.js';
import { formatDuration, formatTimestamp } from '../durations.js';
import { keyDetails, keysTable, secretNotice } from '../format.js';
import { collectMetadata, parseGrace, parseLimit, parseModels, parseWhen } from '../option-parsers.js';

interface CreateOptions {
  team: string;
  name?: string;
  owner?: string;
  models?: string[];
  expiresAt?: number;
  metadata?: Metadata;
}

interface UpdateOptions {
  name?: string;
  owner?: string;
  models?: string[];
  expiresAt?: number;
  /** Commander's `--no-expiry`: true unless the flag was given. */
  expiry: boolean;
  disable?: boolean;
  enable?: boolean;
  metadata?: Metadata;
  clearMetadata?: boolean;
}

interface ListOptions {
  team?: string;
  limit?: number;
  after?: string;
  all?: boolean;
}

const WHEN =
  'an ISO date (2025-12-31, 2025-12-31T18:00Z; UTC unless a zone is given), Unix seconds, or +30d / +12h';

export function registerKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description("manage a team's API keys: issue, inspect, change, rotate, revoke")
    .addHelpText(
      'after',
      examples([
        'tollgate keys create --team team_0mxdutgxl000b7kq2vfz --name ci --expires-at +90d',
        'tollgate keys list --team team_0mxdutgxl000b7kq2vfz',
        'tollgate keys rotate 0mxdutgxm000sledsi --grace 1h',
        'tollgate keys revoke 0mxdutgxm000sledsi',
      ]),
    );

  keys
    .command('create')
    .description('issue a key; its secret is printed once, here')
    .requiredOption('--team <id>', 'the team the key belongs to')
    .option('--name <name>', 'display name')
    .option('--owner <owner>', 'who holds the key (a person, a service)')
    .option(
      '--models <list>',
      "comma-separated models, a subset of the team's (default: the team's)",
      parseModels,
    )
    .option('--expires-at <when>', `when the key stops working: ${WHEN}`, parseWhen)
    .option('--metadata <key=value>', 'a metadata entry; repeat for more', collectMetadata)
    .addHelpText(
      'after',
      examples([
        'tollgate keys create --team team_0mxdutgxl000b7kq2vfz --name laptop --owner alice@example.com',
        'tollgate keys create --team team_0mxdutgxl000b7kq2vfz --models gpt-4o-mini --expires-at +30d',
        'tollgate keys create --team team_0mxdutgxl000b7kq2vfz --expires-at 2026-01-01 --metadata ticket=OPS-42',
        'KEY=$(tollgate keys create --team team_0mxdutgxl000b7kq2vfz --json | jq -r .key)',
      ]),
    )
    .action(async (options: CreateOptions, command: Command) => {
      const body: CreateKeyRequest = { team_id: options.team };
      if (options.name !== undefined) body.name = options.name;
      if (options.owner !== undefined) body.owner = options.owner;
      if (options.models) body.models = options.models;
      if (options.expiresAt !== undefined) body.expires_at = options.expiresAt;
      if (options.metadata) body.metadata = options.metadata;
      const response = await clientFor(command).createKey(body);
      emit(command, response, (key) => secretNotice(key, `Created key ${key.id} for team ${key.team_id}:`));
    });

  keys
    .command('list')
    .description('list keys, oldest first')
    .option('--team <id>', "only this team's keys")
    .option('--limit <n>', 'keys per page, 1-100 (the gateway defaults to 20)', parseLimit)
    .option('--after <id>', "start after this key id (a previous page's last id)")
    .option('--all', 'follow every page; with --json, print them as one list')
    .addHelpText(
      'after',
      examples([
        'tollgate keys list',
        'tollgate keys list --team team_0mxdutgxl000b7kq2vfz --all',
        'tollgate keys list --all --json | jq -r \'.data[] | select(.status == "expired") | .id\'',
      ]),
    )
    .action(async (options: ListOptions, command: Command) => {
      const client = clientFor(command);
      const page = await fetchPages(
        (after) => client.listKeys({ team_id: options.team, limit: options.limit, after }),
        options,
      );
      if (page.data.data.length === 0) await confirmExists(client, { team: options.team });
      emit(command, page, (list) => keysTable(list.data));
      morePagesHint(command, page.data, 'keys');
    });

  keys
    .command('get')
    .description('show one key (never its secret)')
    .argument('<id>', 'key id')
    .addHelpText(
      'after',
      examples(['tollgate keys get 0mxdutgxm000sledsi', 'tollgate keys get 0mxdutgxm000sledsi --json']),
    )
    .action(async (id: string, _options: object, command: Command) => {
      emit(command, await clientFor(command).getKey(id), keyDetails);
    });

  keys
    .command('update')
    .description('change a key; only the options given are changed')
    .argument('<id>', 'key id')
    .option('--name <name>', 'new display name')
    .option('--owner <owner>', 'new holder')
    .option('--models <list>', "comma-separated models, a subset of the team's", parseModels)
    .option('--expires-at <when>', `new expiry: ${WHEN}`, parseWhen)
    .addOption(new Option('--no-expiry', 'remove the expiry').conflicts('expiresAt'))
    .addOption(new Option('--disable', 'stop the key working until --enable').conflicts('enable'))
    .option('--enable', 'let a disabled key work again')
    .option(
      '--metadata <key=value>',
      'a metadata entry; repeat for more (replaces all metadata)',
      collectMetadata,
    )
    .addOption(new Option('--clear-metadata', 'remove all metadata').conflicts('metadata'))
    .addHelpText(
      'after',
      examples([
        'tollgate keys update 0mxdutgxm000sledsi --disable',
        'tollgate keys update 0mxdutgxm000sledsi --enable --expires-at +7d',
        'tollgate keys update 0mxdutgxm000sledsi --models gpt-4o-mini --owner bob@example.com',
        'tollgate keys update 0mxdutgxm000sledsi --no-expiry',
      ]),
    )
    .action(async (id: string, options: UpdateOptions, command: Command) => {
      const body: UpdateKeyRequest = {};
      if (options.name !== undefined) body.name = options.name;
      if (options.owner !== undefined) body.owner = options.owner;
      if (options.models) body.models = options.models;
      if (options.expiresAt !== undefined) body.expires_at = options.expiresAt;
      if (options.expiry === false) body.expires_at = null;
      if (options.disable) body.disabled = true;
      if (options.enable) body.disabled = false;
      if (options.metadata) body.metadata = options.metadata;
      if (options.clearMetadata) body.metadata = {};
      if (Object.keys(body).length === 0) {
        command.error('error: nothing to update: give at least one option (see --help)', {
          code: 'tollgate.nothingToUpdate',
        });
      }
      const response = await clientFor(command).updateKey(id, body);
      emit(command, response, (key) => `Updated key ${key.id}.\n\n${keyDetails(key)}`);
    });

  keys
    .command('rotate')
    .description("replace a key's secret; the new one is printed once, here")
    .argument('<id>', 'key id')
    .option(
      '--grace <duration>',
      'how long the old secret keeps working: seconds, or 90s, 5m, 1h... (default: 0, it stops now)',
      parseGrace,
    )
    .addHelpText(
      'after',
      examples([
        'tollgate keys rotate 0mxdutgxm000sledsi',
        'tollgate keys rotate 0mxdutgxm000sledsi --grace 1h',
      ]),
    )
    .action(async (id: string, options: { grace?: number }, command: Command) => {
      const startedAt = Math.floor(Date.now() / 1000);
      const response = await clientFor(command).rotateKey(
        id,
        options.grace === undefined ? {} : { grace_seconds: options.grace },
      );
      const grace = options.grace ?? 0;
      const footnote =
        grace > 0
          ? `The old secret keeps working for ${formatDuration(grace)} (until about ${formatTimestamp(startedAt + grace)}).`
          : 'The old secret no longer works.';
      emit(command, response, (key) => secretNotice(key, `Rotated key ${key.id}; its new secret:`, footnote));
    });

  keys
    .command('revoke')
    .description('revoke a key for good (every gateway instance stops accepting it within a second)')
    .argument('<id>', 'key id')
    .addHelpText('after', examples(['tollgate keys revoke 0mxdutgxm000sledsi']))
    .action(async (id: string, _options: object, command: Command) => {
      const response = await clientFor(command).revokeKey(id);
      emit(command, response, (key) => `Revoked key ${key.id}.\n\n${keyDetails(key)}`);
    });
}
