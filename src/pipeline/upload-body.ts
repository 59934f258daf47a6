import type { Readable } from 'node:stream';
import { RequestTooLargeError } from '../errors.js';
import type { MultipartModelRewriter } from '../http/multipart-model-rewriter.js';

export interface PendingUpload {
  /** The rest of the body, rewritten, counted against the limit; held bytes come first. */
  body: AsyncGenerator<Buffer>;
}

/**
 * Reads a multipart body only as far as its `model` field (the router needs it before any
 * byte can go upstream), then returns a generator for the whole body. Clients that send
 * `model` before `file` (the official SDKs send fields in the order given) are streamed
 * without holding the file; otherwise the bytes before the field are held, within the limit.
 */
export async function readUntilModel(
  source: Readable,
  rewriter: MultipartModelRewriter,
  limit: number,
): Promise<PendingUpload> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let size = 0;
  const count = (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) throw new RequestTooLargeError(limit);
  };
  let ended = false;
  while (!rewriter.modelKnown) {
    const next = await iterator.next();
    if (next.done) {
      held.push(rewriter.end());
      ended = true;
      break;
    }
    count(next.value);
    held.push(rewriter.write(next.value));
  }
  async function* body(): AsyncGenerator<Buffer> {
    for (const chunk of held) if (chunk.length > 0) yield chunk;
    if (ended) return;
    while (true) {
      const next = await iterator.next();
      if (next.done) break;
      count(next.value);
      yield rewriter.write(next.value);
    }
    const rest = rewriter.end();
    if (rest.length > 0) yield rest;
  }
  return { body: body() };
}
