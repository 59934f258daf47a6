import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import type { FuzzAnswer } from './fuzz-checks.js';
import type { FuzzRequest } from './fuzz-requests.js';

/** Where a real client gives up on a request: never, mid-upload, on the headers, mid-answer. */
export type AbortPlan =
  | { at: 'never' }
  | { at: 'mid-upload'; fraction: number }
  | { at: 'after-headers' }
  | { at: 'after-bytes'; bytes: number };

export const abortPlan: fc.Arbitrary<AbortPlan> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ at: 'never' as const }) },
  {
    weight: 1,
    arbitrary: fc
      .double({ min: 0, max: 0.99, noNaN: true })
      .map((fraction) => ({ at: 'mid-upload' as const, fraction })),
  },
  { weight: 1, arbitrary: fc.constant({ at: 'after-headers' as const }) },
  {
    weight: 3,
    arbitrary: fc.integer({ min: 1, max: 2_000 }).map((bytes) => ({ at: 'after-bytes' as const, bytes })),
  },
);

/**
 * Sends one fuzz request over a real socket and, per the plan, cuts the connection. Resolves
 * with the whole answer, or `aborted` once the socket is closed (never on a timer).
 */
export function sendOverHttp(
  baseUrl: string,
  fuzz: FuzzRequest,
  plan: AbortPlan,
): Promise<FuzzAnswer | 'aborted'> {
  return new Promise((resolve, reject) => {
    const body = fuzz.body === undefined ? undefined : Buffer.from(fuzz.body);
    const headers: Record<string, string> = { ...fuzz.headers };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = httpRequest(`${baseUrl}${fuzz.url}`, { method: fuzz.method, headers });
    let cut = false;
    const abort = () => {
      cut = true;
      req.destroy();
    };
    req.on('close', () => {
      if (cut) resolve('aborted');
    });
    req.on('error', (error) => {
      if (!cut) reject(error);
    });
    req.on('response', (res) => {
      if (plan.at === 'after-headers') return abort();
      const parts: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        received += chunk.length;
        if (plan.at === 'after-bytes' && received >= plan.bytes && !res.complete) abort();
      });
      res.on('error', (error) => {
        if (!cut) reject(error);
      });
      res.on('end', () => {
        if (!cut) resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) });
      });
    });
    if (plan.at === 'mid-upload' && body !== undefined && body.length > 1) {
      req.write(body.subarray(0, Math.floor(body.length * plan.fraction)), () => abort());
      return;
    }
    req.end(body);
  });
}
