import { z } from 'zod';

/** A timer longer than this fires at once in Node (a 32-bit signed delay). */
const MAX_TIMER_MS = 2_147_483_647;
const positiveMs = z.number().int().positive().max(MAX_TIMER_MS);

/**
 * `type: module`: a backend written by the user, loaded from a JavaScript module at boot (see
 * src/backends/module/ and the README's "Your own backend (modules)").
 */
export const moduleBackendSchema = z
  .object({
    type: z.literal('module'),
    /**
     * What to import: a path (relative to the config file's folder, or absolute), a file: URL,
     * or a package name (resolved from the gateway's own folder, like any import of the gateway).
     */
    module: z.string().min(1, 'name the module to load: a path such as ./backends/mine.mjs, or a package'),
    /** Handed to the module's factory as is. */
    options: z.record(z.string(), z.unknown()).default({}),
    /**
     * Time to first byte: the module's answer (its status and first body chunk) must come within
     * this, or the client gets a 504. Also bounds the factory at boot, health checks and close().
     */
    timeoutMs: positiveMs.default(120_000),
    /** Longest silence allowed between two body chunks once the answer started. */
    idleTimeoutMs: positiveMs.default(120_000),
  })
  .strict();

export type ModuleBackendConfig = z.output<typeof moduleBackendSchema>;
