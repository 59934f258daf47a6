import type { Backend, BackendCall, BackendResponse } from '../backend.js';

/** The part of pino's logger a module gets: a child of the gateway's, tagged with the backend. */
export interface ModuleBackendLogger {
  error(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  info(object: object, message?: string): void;
  debug(object: object, message?: string): void;
}

/** The factory's third argument. */
export interface ModuleBackendContext {
  logger: ModuleBackendLogger;
  /** The config file's folder, for paths in `options` that are relative to it. */
  configDir: string;
  /** Aborted when the factory took longer than the backend's `timeoutMs` and boot gave up on it. */
  signal: AbortSignal;
}

/** A body chunk: strings are sent as UTF-8. */
export type ModuleBodyChunk = Buffer | Uint8Array | string;

/**
 * A module's answer: a BackendResponse whose chunks may also be strings, whose body may be one
 * string or byte array, and whose headers may be left out. Only the fields the gateway reads of a
 * module's answer (ContainedBackend rebuilds it), picked rather than all but some: the gateway's
 * own hooks (`usageCounted`, `partialUsage`) are not asked of a module, whose usage is what its
 * answer says, else the gateway's count.
 */
export interface ModuleBackendResponse extends Pick<BackendResponse, 'status' | 'contentType'> {
  headers?: Record<string, string>;
  body: AsyncIterable<ModuleBodyChunk> | Iterable<ModuleBodyChunk> | string | Uint8Array;
}

/**
 * What a module's factory returns. `supports` and `send` are required; the others default to
 * "no models to list" ([]), "healthy" and "nothing to close". `name` and `type` are the
 * gateway's (the config's backend name, `module`): a module need not set them.
 */
export type ModuleBackend = Pick<Backend, 'supports'> &
  Partial<Pick<Backend, 'listModels' | 'checkHealth' | 'close' | 'unavailableForMs' | 'name' | 'type'>> & {
    send(call: BackendCall): Promise<ModuleBackendResponse> | ModuleBackendResponse;
  };

/**
 * A backend module's export: `export default function createBackend(name, options, context)`
 * (or a named export `createBackend`), sync or async.
 */
export type ModuleBackendFactory = (
  name: string,
  options: Record<string, unknown>,
  context: ModuleBackendContext,
) => ModuleBackend | Promise<ModuleBackend>;
