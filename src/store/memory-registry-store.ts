import { constants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isObject } from '../json-values.js';
import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';
import { type AtomicWriteHooks, writeFileAtomic } from './atomic-file.js';
import { DataDirError, fileProblem } from './data-dir-error.js';
import type { RegistryStore } from './registry-store.js';

const FILE_NAME = 'tollgate-state.json';
const AUDIT_CAP = 10_000;

interface PersistedState {
  version: 1;
  teams: TeamRecord[];
  keys: KeyRecord[];
  audit: AuditEvent[];
  settings: Record<string, string>;
  lastUsed: Record<string, number>;
}

export interface MemoryRegistryOptions {
  /** Where teams and keys persist; none keeps everything in memory only (tests). */
  dataDir?: string | undefined;
  writeHooks?: AtomicWriteHooks | undefined;
}

function page<T extends { id: string }>(sorted: T[], query: PageQuery): Page<T> {
  const start = query.after === undefined ? 0 : sorted.findIndex((item) => item.id > (query.after as string));
  if (start === -1) return { items: [], hasMore: false };
  const items = sorted.slice(start, start + query.limit);
  return { items, hasMore: start + query.limit < sorted.length };
}

const hasId = (record: unknown) => isObject(record) && typeof record.id === 'string';

/**
 * The state file's content, or undefined when it is not what persist() writes: checked as far
 * as loading relies on it (ids, a key's hashes), so a damaged file is said to be one instead of
 * failing as `state.teams is not iterable`.
 */
function parseState(text: string): PersistedState | undefined {
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(state)) return undefined;
  const { teams, keys, audit, settings, lastUsed } = state;
  const valid =
    Array.isArray(teams) &&
    teams.every(hasId) &&
    Array.isArray(keys) &&
    keys.every(
      (key) =>
        hasId(key) &&
        typeof (key as Record<string, unknown>).hash === 'string' &&
        Array.isArray((key as Record<string, unknown>).retiredHashes),
    ) &&
    Array.isArray(audit) &&
    audit.every(hasId) &&
    isObject(settings) &&
    (lastUsed === undefined || isObject(lastUsed));
  return valid ? (state as unknown as PersistedState) : undefined;
}

const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Teams, keys, the audit log, settings and last-used times in this process, written to one file
 * in the data directory after every change (atomically) and read back on start.
 */
export class MemoryRegistryStore implements RegistryStore {
  private readonly teams = new Map<string, TeamRecord>();
  private readonly keys = new Map<string, KeyRecord>();
  private readonly hashes = new Map<string, string>();
  private audit: AuditEvent[] = [];
  private readonly settings = new Map<string, string>();
  private readonly used = new Map<string, number>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly options: MemoryRegistryOptions) {}

  /** Opens the registry, loading the data directory's file if there is one. */
  static async open(options: MemoryRegistryOptions = {}): Promise<MemoryRegistryStore> {
    const registry = new MemoryRegistryStore(options);
    if (options.dataDir) await registry.load(options.dataDir);
    return registry;
  }

  /** Resolves once the writes started so far have landed (or failed). */
  async flush(): Promise<void> {
    await this.writing.catch(() => {});
  }

  private get file(): string | undefined {
    return this.options.dataDir ? join(this.options.dataDir, FILE_NAME) : undefined;
  }

  private async load(dataDir: string): Promise<void> {
    try {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
      // Every change is written here: a folder the gateway may not write to is said now, not at
      // the first change (which would fail the boot's admin key or an admin request).
      await access(dataDir, constants.W_OK);
    } catch (error) {
      throw new DataDirError(`cannot use ${resolve(dataDir)} as the data directory: ${fileProblem(error)}`, {
        cause: error,
      });
    }
    const file = join(dataDir, FILE_NAME);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new DataDirError(`cannot read the state file ${resolve(file)}: ${fileProblem(error)}`, {
        cause: error,
      });
    }
    // Writes are atomic, so a file that does not parse was damaged outside the gateway:
    // refuse to start rather than silently begin again with no teams or keys.
    const state = parseState(text);
    if (state === undefined)
      throw new DataDirError(
        `the state file ${resolve(file)} is damaged (${text.trim() === '' ? 'it is empty' : 'not the JSON the gateway writes'}): the gateway does not start on it rather than begin again without its teams and keys; restore it from a backup, or move it away to start with none`,
      );
    for (const team of state.teams) this.teams.set(team.id, team);
    for (const key of state.keys) this.indexKey(key);
    // Paging follows ids (as in Redis), so keep the log in id order whatever the file's order.
    this.audit = [...state.audit].sort(byId);
    for (const [name, value] of Object.entries(state.settings)) this.settings.set(name, value);
    for (const [id, at] of Object.entries(state.lastUsed ?? {})) this.used.set(id, at);
  }

  private persist(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const state: PersistedState = {
      version: 1,
      teams: [...this.teams.values()],
      keys: [...this.keys.values()],
      audit: this.audit,
      settings: Object.fromEntries(this.settings),
      lastUsed: Object.fromEntries(this.used),
    };
    const data = JSON.stringify(state);
    // One write at a time, in order: the last one to land is the newest state.
    this.writing = this.writing
      .catch(() => {})
      .then(() => writeFileAtomic(file, data, this.options.writeHooks));
    return this.writing;
  }

  private indexKey(key: KeyRecord): void {
    const previous = this.keys.get(key.id);
    if (previous) {
      this.hashes.delete(previous.hash);
      for (const retired of previous.retiredHashes) this.hashes.delete(retired.hash);
    }
    this.keys.set(key.id, key);
    this.hashes.set(key.hash, key.id);
    for (const retired of key.retiredHashes) this.hashes.set(retired.hash, key.id);
  }

  async insertTeam(team: TeamRecord): Promise<void> {
    this.teams.set(team.id, structuredClone(team));
    await this.persist();
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    const team = this.teams.get(id);
    return team && structuredClone(team);
  }

  async listTeams(query: PageQuery): Promise<Page<TeamRecord>> {
    const result = page([...this.teams.values()].sort(byId), query);
    return { items: result.items.map((team) => structuredClone(team)), hasMore: result.hasMore };
  }

  async updateTeam(team: TeamRecord): Promise<void> {
    this.teams.set(team.id, structuredClone(team));
    await this.persist();
  }

  async deleteTeam(id: string): Promise<void> {
    this.teams.delete(id);
    await this.persist();
  }

  async insertKey(key: KeyRecord): Promise<void> {
    this.indexKey(structuredClone(key));
    await this.persist();
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    const key = this.keys.get(id);
    return key && structuredClone(key);
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    const id = this.hashes.get(hash);
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key) return undefined;
    if (key.hash !== hash && !key.retiredHashes.some((r) => r.hash === hash && r.until > Date.now()))
      return undefined;
    return structuredClone(key);
  }

  async listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>> {
    const all = [...this.keys.values()].filter(
      (key) => query.teamId === undefined || key.teamId === query.teamId,
    );
    const result = page(all.sort(byId), query);
    return { items: result.items.map((key) => structuredClone(key)), hasMore: result.hasMore };
  }

  async updateKey(next: KeyRecord, previous: KeyRecord): Promise<boolean> {
    if (JSON.stringify(this.keys.get(next.id)) !== JSON.stringify(previous)) return false;
    this.indexKey(structuredClone(next));
    await this.persist();
    return true;
  }

  async touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    for (const [id, at] of lastUsed) if ((this.used.get(id) ?? 0) < at) this.used.set(id, at);
    await this.persist();
  }

  async lastUsed(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const at = this.used.get(id);
      if (at !== undefined) out.set(id, at);
    }
    return out;
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    // Events of one millisecond get ids in random order, and `after` cursors compare ids: insert
    // in id order (almost always at the end) so a page never skips or repeats an event.
    let at = this.audit.length;
    while (at > 0 && this.audit[at - 1]!.id > event.id) at--;
    this.audit.splice(at, 0, structuredClone(event));
    if (this.audit.length > AUDIT_CAP) this.audit = this.audit.slice(-AUDIT_CAP);
    await this.persist();
  }

  async listAudit(query: PageQuery): Promise<Page<AuditEvent>> {
    const result = page(this.audit, query);
    return { items: result.items.map((event) => structuredClone(event)), hasMore: result.hasMore };
  }

  async setSettingIfAbsent(name: string, value: string): Promise<string> {
    const existing = this.settings.get(name);
    if (existing !== undefined) return existing;
    this.settings.set(name, value);
    await this.persist();
    return value;
  }
}
