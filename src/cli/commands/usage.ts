import { type Command, Option } from 'commander';
import type { UsageReport } from '../admin-types.js';
import { clientFor, confirmExists, emit, examples } from '../cli-context.js';
import { renderTable } from '../format.js';

interface UsageOptions {
  team?: string;
  key?: string;
  model?: string;
  from?: string;
  to?: string;
  groupBy: string;
}

const GROUP_COLUMNS: Record<string, Array<[string, keyof UsageReport['data'][number]]>> = {
  day: [['DAY', 'day']],
  model: [['MODEL', 'model']],
  key: [
    ['KEY', 'key_id'],
    ['TEAM', 'team_id'],
  ],
  team: [['TEAM', 'team_id']],
};

function usageTable(report: UsageReport): string {
  const columns = GROUP_COLUMNS[report.group_by] ?? [];
  const headers = [
    ...columns.map(([title]) => title),
    'SERVED',
    'REJECTED',
    'INVALID',
    'FAILED',
    'PROMPT',
    'COMPLETION',
    'TOTAL',
    'COST USD',
  ];
  const rows = report.data.map((row) => [
    ...columns.map(([, field]) => String(row[field] ?? '')),
    String(row.requests),
    String(row.rejected),
    String(row.invalid),
    String(row.failed),
    String(row.prompt_tokens),
    String(row.completion_tokens),
    String(row.total_tokens),
    row.cost_usd.toFixed(6),
  ]);
  const heading = `Usage ${report.from} .. ${report.to} (UTC), by ${report.group_by}\n`;
  if (rows.length === 0) return `${heading}No usage in this range.\n`;
  return `${heading}${renderTable(headers, rows)}`;
}

export function registerUsageCommands(program: Command): void {
  program
    .command('usage')
    .description('tokens and spend, summed per day, model, key or team (UTC days; default the last 30)')
    .option('--team <id>', 'only this team')
    .option('--key <id>', 'only this key')
    .option('--model <name>', 'only this public model name')
    .option('--from <day>', 'first UTC day, YYYY-MM-DD')
    .option('--to <day>', 'last UTC day, YYYY-MM-DD (default today)')
    .addOption(
      new Option('--group-by <group>', 'how to sum').choices(['day', 'model', 'key', 'team']).default('day'),
    )
    .addHelpText(
      'after',
      examples([
        'tollgate usage --team team_0mxdutgxl000b7kq2vfz --group-by model',
        'tollgate usage --from 2026-11-01 --group-by key --json',
      ]),
    )
    .action(async (options: UsageOptions, command: Command) => {
      const client = clientFor(command);
      const response = await client.getUsage({
        team_id: options.team,
        key_id: options.key,
        model: options.model,
        from: options.from,
        to: options.to,
        group_by: options.groupBy,
      });
      if (response.data.data.length === 0) await confirmExists(client, options);
      emit(command, response, usageTable);
    });
}
