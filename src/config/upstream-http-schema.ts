import { z } from 'zod';

/** How the gateway talks HTTP to an upstream: shared by every HTTP backend type's section. */

const positiveMs = z.number().int().positive();

export const timeoutsSchema = z
  .object({
    /** TCP + TLS connect. */
    connectMs: positiveMs.default(10_000),
    /** From sending the request to the upstream's response headers (time to first byte). */
    firstByteMs: positiveMs.default(120_000),
    /** Longest silence allowed between two body chunks of a streamed response. */
    idleMs: positiveMs.default(120_000),
    /** The whole upstream exchange, streams included. */
    totalMs: positiveMs.default(600_000),
  })
  .strict()
  .prefault({});

export const poolSchema = z
  .object({
    connections: z.number().int().positive().default(128),
    keepAliveTimeoutMs: positiveMs.default(30_000),
  })
  .strict()
  .prefault({});
