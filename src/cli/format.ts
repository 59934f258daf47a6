import type {
  ApiKey,
  ApiKeyWithSecret,
  CacheScopeStats,
  KeyPolicy,
  StoredMetadata,
  Team,
} from './admin-types.js';
import { displayWidth } from './display-width.js';
import { formatDate, formatDuration, formatTimestamp } from './durations.js';

const NONE = '-';

/**
 * Names, owners and metadata are whatever someone typed into the API; control characters
 * in them could move the cursor or recolour the terminal of whoever lists them later.
 */
export function sanitize(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Columns padded to their widest cell (in terminal columns), two spaces apart, no trailing blanks. */
export function renderTable(headers: string[], rows: string[][]): string {
  const cells = [headers, ...rows].map((row) => row.map(sanitize));
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => displayWidth(row[column] ?? ''))));
  return cells
    .map((row) =>
      row
        .map((cell, column) => cell + ' '.repeat((widths[column] ?? 0) - displayWidth(cell)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/** `label: value` lines with the values aligned. */
export function renderFields(fields: Array<[string, string]>): string {
  const labelWidth = Math.max(...fields.map(([label]) => displayWidth(label))) + 1;
  return fields
    .map(([label, value]) => `${`${label}:`.padEnd(labelWidth)} ${sanitize(value)}`.trimEnd())
    .join('\n')
    .concat('\n');
}

function text(value: string | null | undefined): string {
  return value === null || value === undefined || value === '' ? NONE : value;
}

function models(list: string[] | null | undefined, inherited: string): string {
  if (!list) return inherited;
  if (list.includes('*')) return '* (all)';
  return list.length === 0 ? '(none)' : list.join(', ');
}

/** Tables stay scannable when a list is long; the details view shows it whole. */
function modelsShort(list: string[] | null | undefined, inherited: string): string {
  if (!list || list.includes('*') || list.length <= 3) return models(list, inherited);
  return `${list.slice(0, 3).join(', ')} +${list.length - 3}`;
}

function metadata(map: StoredMetadata | null | undefined): string {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return NONE;
  return entries
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(', ');
}

function policy(value: KeyPolicy | null | undefined): string {
  if (!value) return NONE;
  const parts: string[] = [];
  if (value.models) parts.push(`models ${models(value.models, '')}`);
  if (value.expires_in_seconds !== undefined) {
    parts.push(`expire after ${formatDuration(value.expires_in_seconds)}`);
  }
  return parts.length === 0 ? NONE : parts.join('; ');
}

function date(seconds: number | null | undefined, absent: string): string {
  return seconds === null || seconds === undefined ? absent : formatDate(seconds);
}

function timestamp(seconds: number | null | undefined, absent: string): string {
  return seconds === null || seconds === undefined ? absent : formatTimestamp(seconds);
}

/**
 * List pages carry no `active_keys` (counting them would cost a scan of the keys per team): the
 * table shows what a page has; `teams get` shows the count.
 */
export function teamsTable(teams: Team[]): string {
  if (teams.length === 0) return 'No teams.\n';
  return renderTable(
    ['ID', 'NAME', 'MODELS', 'CREATED'],
    teams.map((team) => [team.id, team.name, modelsShort(team.models, NONE), date(team.created_at, NONE)]),
  );
}

export function teamDetails(team: Team): string {
  return renderFields([
    ['id', team.id],
    ['name', team.name],
    ['models', models(team.models, NONE)],
    ['key policy', policy(team.default_key_policy)],
    ['active keys', team.active_keys === undefined ? NONE : String(team.active_keys)],
    ['metadata', metadata(team.metadata)],
    ['created', timestamp(team.created_at, NONE)],
    ['updated', timestamp(team.updated_at, NONE)],
  ]);
}

export function keysTable(keys: ApiKey[]): string {
  if (keys.length === 0) return 'No keys.\n';
  return renderTable(
    ['ID', 'NAME', 'OWNER', 'TEAM', 'STATUS', 'MODELS', 'EXPIRES', 'LAST USED', 'CREATED'],
    keys.map((key) => [
      key.id,
      text(key.name),
      text(key.owner),
      key.team_id,
      key.status,
      modelsShort(key.models, '(team)'),
      date(key.expires_at, 'never'),
      date(key.last_used_at, 'never'),
      date(key.created_at, NONE),
    ]),
  );
}

export function keyDetails(key: ApiKey): string {
  const fields: Array<[string, string]> = [
    ['id', key.id],
    ['name', text(key.name)],
    ['owner', text(key.owner)],
    ['team', key.team_id],
    ['status', key.status],
    ['models', models(key.models, "(the team's)")],
    ['expires', timestamp(key.expires_at, 'never')],
    ['last used', timestamp(key.last_used_at, 'never')],
    ['preview', key.preview],
    ['metadata', metadata(key.metadata)],
    ['created', timestamp(key.created_at, NONE)],
    ['updated', timestamp(key.updated_at, NONE)],
  ];
  if (key.revoked_at !== null && key.revoked_at !== undefined) {
    fields.push(['revoked', timestamp(key.revoked_at, NONE)]);
  }
  return renderFields(fields);
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** `512 B`, `1.5 KiB`, `12 MiB`: for people; `--json` keeps the exact count. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 'B';
  for (const next of BYTE_UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

export function cacheStatsTable(stats: CacheScopeStats[]): string {
  if (stats.length === 0) return 'No cache entries.\n';
  return renderTable(
    ['SCOPE', 'ENTRIES', 'BYTES'],
    stats.map((row) => [row.scope, String(row.entries), formatBytes(row.bytes)]),
  );
}

/**
 * The plaintext exists outside its holder only in this answer, so it gets a line of its
 * own (easy to copy, hard to miss) and a warning that this is the only chance.
 */
export function secretNotice(key: ApiKeyWithSecret, headline: string, footnote?: string): string {
  const lines = [headline, '', `    ${key.key}`, '', 'Save this key now: it will not be shown again.'];
  if (footnote) lines.push(footnote);
  return `${lines.join('\n')}\n\n${keyDetails(key)}`;
}

export function errorLine(message: string, details: { code?: string | null; status?: number }): string {
  const extra = [details.code, details.status ? `HTTP ${details.status}` : undefined].filter(Boolean);
  return `tollgate: ${sanitize(message)}${extra.length ? ` (${extra.join(', ')})` : ''}\n`;
}
