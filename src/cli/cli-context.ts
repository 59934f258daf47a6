import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { AdminClient, type AdminResponse } from './admin-client.js';
import type { ListPage } from './admin-types.js';

/** The options every admin command inherits from the program (timeout in milliseconds). */
export type GlobalOptions = {
  url: string;
  adminKey?: string | undefined;
  json?: boolean | undefined;
  timeout: number;
};

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export function clientFor(command: Command): AdminClient {
  const options = globalOptions(command);
  return new AdminClient({
    baseUrl: options.url,
    adminKey: options.adminKey,
    timeoutMs: options.timeout,
    userAgent: `tollgate-cli/${packageVersion()}`,
  });
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** A remark for the person at the terminal that must not end up in piped stdout. */
export function note(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** `--json` prints the gateway's body untouched, so scripts see exactly what the API documents. */
export function emit<T>(
  command: Command,
  response: { data: T; raw: string },
  human: (data: T) => string,
): void {
  print(globalOptions(command).json ? response.raw : human(response.data));
}

export interface PageOptions {
  limit?: number | undefined;
  after?: string | undefined;
  all?: boolean | undefined;
}

/**
 * One page, or with `all` every page from `after` on, merged into one list object (its
 * `has_more` false) so `--json --all` still prints a single document.
 */
export async function fetchPages<T>(
  fetchPage: (after: string | undefined) => Promise<AdminResponse<ListPage<T>>>,
  options: PageOptions,
): Promise<{ data: ListPage<T>; raw: string }> {
  let response = await fetchPage(options.after);
  if (!options.all) return response;
  const data = [...response.data.data];
  const firstId = response.data.first_id;
  let lastId = response.data.last_id;
  const cursors = new Set<string>();
  while (response.data.has_more && response.data.last_id) {
    // A gateway answering the same cursor twice would otherwise keep this loop going forever.
    if (cursors.has(response.data.last_id)) {
      throw new Error(`the gateway returned the page after '${response.data.last_id}' twice; stopping`);
    }
    cursors.add(response.data.last_id);
    response = await fetchPage(response.data.last_id);
    data.push(...response.data.data);
    lastId = response.data.last_id ?? lastId;
  }
  const merged: ListPage<T> = {
    object: 'list',
    data,
    first_id: data.length > 0 ? firstId : null,
    last_id: data.length > 0 ? lastId : null,
    has_more: false,
  };
  return { data: merged, raw: JSON.stringify(merged) };
}

/**
 * The admin API answers a list, stats or usage filtered by an id it does not know as it would for
 * a team or key with nothing to show: `No keys.` for a mistyped team id. An empty answer is the
 * only one a typo can hide behind, so only then one more request asks for the team (or key), and
 * its 404 (exit 3, "no such team") is what the user sees.
 */
export async function confirmExists(
  client: AdminClient,
  ids: { team?: string | undefined; key?: string | undefined },
): Promise<void> {
  if (ids.team !== undefined) await client.getTeam(ids.team);
  if (ids.key !== undefined) await client.getKey(ids.key);
}

/** Without `--all`, say how to get the rest, on stderr so a piped table stays a table. */
export function morePagesHint(command: Command, page: ListPage<unknown>, noun: string): void {
  if (page.has_more && page.last_id && !globalOptions(command).json) {
    note(`More ${noun}: add --after ${page.last_id} for the next page, or --all for every page.`);
  }
}

/** Examples block for `--help`; each line is a full command a user can paste. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
