import { type Command, Option } from 'commander';
import type { CreateTeamRequest, KeyPolicy, Metadata, UpdateTeamRequest } from '../admin-types.js';
import { clientFor, emit, examples, fetchPages, morePagesHint } from '../cli-context.js';
import { teamDetails, teamsTable } from '../format.js';
import { collectMetadata, parseLifetime, parseLimit, parseModels } from '../option-parsers.js';

interface PolicyOptions {
  keyModels?: string[];
  keyExpiresIn?: number;
}

interface CreateOptions extends PolicyOptions {
  name: string;
  models?: string[];
  metadata?: Metadata;
}

interface UpdateOptions extends PolicyOptions {
  name?: string;
  models?: string[];
  clearKeyPolicy?: boolean;
  metadata?: Metadata;
  clearMetadata?: boolean;
}

interface ListOptions {
  limit?: number;
  after?: string;
  all?: boolean;
}

function keyPolicy(options: PolicyOptions): KeyPolicy | undefined {
  if (options.keyModels === undefined && options.keyExpiresIn === undefined) return undefined;
  const policy: KeyPolicy = {};
  if (options.keyModels !== undefined) policy.models = options.keyModels;
  if (options.keyExpiresIn !== undefined) policy.expires_in_seconds = options.keyExpiresIn;
  return policy;
}

function policyOptions(): Option[] {
  return [
    new Option(
      '--key-models <list>',
      'default key policy: models for new keys created without --models',
    ).argParser(parseModels),
    new Option(
      '--key-expires-in <duration>',
      'default key policy: new keys expire this long after creation (90s, 5m, 12h, 30d)',
    ).argParser(parseLifetime),
  ];
}

export function registerTeamsCommands(program: Command): void {
  const teams = program
    .command('teams')
    .description('manage teams: the models they may use and the defaults for their keys')
    .addHelpText(
      'after',
      examples([
        'tollgate teams create --name research --models gpt-4o,gpt-4o-mini',
        'tollgate teams list',
        'tollgate teams delete team_0mxdutgxl000b7kq2vfz --force',
      ]),
    );

  const create = teams
    .command('create')
    .description('create a team')
    .requiredOption('--name <name>', 'display name')
    .option(
      '--models <list>',
      "comma-separated models the team may use, or '*' for all (default: *)",
      parseModels,
    )
    .option('--metadata <key=value>', 'a metadata entry; repeat for more', collectMetadata);
  for (const option of policyOptions()) create.addOption(option);
  create
    .addHelpText(
      'after',
      examples([
        'tollgate teams create --name research',
        'tollgate teams create --name support --models gpt-4o-mini --key-expires-in 30d',
        'tollgate teams create --name ml --models "*" --metadata cost_center=42 --metadata owner=ml-infra',
      ]),
    )
    .action(async (options: CreateOptions, command: Command) => {
      const body: CreateTeamRequest = { name: options.name };
      if (options.models) body.models = options.models;
      const policy = keyPolicy(options);
      if (policy) body.default_key_policy = policy;
      if (options.metadata) body.metadata = options.metadata;
      const response = await clientFor(command).createTeam(body);
      emit(command, response, (team) => `Created team ${team.id}.\n\n${teamDetails(team)}`);
    });

  teams
    .command('list')
    .description('list teams, oldest first')
    .option('--limit <n>', 'teams per page, 1-100 (the gateway defaults to 20)', parseLimit)
    .option('--after <id>', "start after this team id (a previous page's last id)")
    .option('--all', 'follow every page; with --json, print them as one list')
    .addHelpText(
      'after',
      examples(['tollgate teams list', 'tollgate teams list --all --json | jq -r ".data[].id"']),
    )
    .action(async (options: ListOptions, command: Command) => {
      const client = clientFor(command);
      const page = await fetchPages((after) => client.listTeams({ limit: options.limit, after }), options);
      emit(command, page, (list) => teamsTable(list.data));
      morePagesHint(command, page.data, 'teams');
    });

  teams
    .command('get')
    .description('show one team')
    .argument('<id>', 'team id')
    .addHelpText(
      'after',
      examples([
        'tollgate teams get team_0mxdutgxl000b7kq2vfz',
        'tollgate teams get team_0mxdutgxl000b7kq2vfz --json',
      ]),
    )
    .action(async (id: string, _options: object, command: Command) => {
      emit(command, await clientFor(command).getTeam(id), teamDetails);
    });

  const update = teams
    .command('update')
    .description('change a team; only the options given are changed')
    .argument('<id>', 'team id')
    .option('--name <name>', 'new display name')
    .option('--models <list>', "comma-separated models the team may use, or '*' for all", parseModels)
    .option(
      '--metadata <key=value>',
      'a metadata entry; repeat for more (replaces all metadata)',
      collectMetadata,
    )
    .addOption(new Option('--clear-metadata', 'remove all metadata').conflicts('metadata'));
  for (const option of policyOptions()) {
    update.addOption(option.conflicts('clearKeyPolicy'));
  }
  update
    .addOption(new Option('--clear-key-policy', 'remove the default key policy'))
    .addHelpText(
      'after',
      `\nThe --key-* options replace the whole default key policy.${examples([
        'tollgate teams update team_0mxdutgxl000b7kq2vfz --name "Research (EU)"',
        'tollgate teams update team_0mxdutgxl000b7kq2vfz --models gpt-4o,o3-mini --key-expires-in 7d',
        'tollgate teams update team_0mxdutgxl000b7kq2vfz --clear-key-policy --clear-metadata',
      ])}`,
    )
    .action(async (id: string, options: UpdateOptions, command: Command) => {
      const body: UpdateTeamRequest = {};
      if (options.name !== undefined) body.name = options.name;
      if (options.models) body.models = options.models;
      const policy = keyPolicy(options);
      if (policy) body.default_key_policy = policy;
      if (options.clearKeyPolicy) body.default_key_policy = null;
      if (options.metadata) body.metadata = options.metadata;
      if (options.clearMetadata) body.metadata = {};
      if (Object.keys(body).length === 0) {
        command.error('error: nothing to update: give at least one option (see --help)', {
          code: 'tollgate.nothingToUpdate',
        });
      }
      const response = await clientFor(command).updateTeam(id, body);
      emit(command, response, (team) => `Updated team ${team.id}.\n\n${teamDetails(team)}`);
    });

  teams
    .command('delete')
    .description('delete a team (refused while it has active keys, unless --force)')
    .argument('<id>', 'team id')
    .option('--force', "revoke the team's active keys first, then delete it")
    .addHelpText(
      'after',
      examples([
        'tollgate teams delete team_0mxdutgxl000b7kq2vfz',
        'tollgate teams delete team_0mxdutgxl000b7kq2vfz --force',
      ]),
    )
    .action(async (id: string, options: { force?: boolean }, command: Command) => {
      const response = await clientFor(command).deleteTeam(id, { force: options.force === true });
      emit(command, response, (deleted) => `Deleted team ${deleted.id}.`);
    });
}
