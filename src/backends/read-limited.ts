/**
 * Reads a body up to `limit` bytes and stops there (the rest is not read): for upstream answers
 * that are only shown or parsed in part, such as error bodies.
 */
export async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length > limit) {
      parts.push(chunk.subarray(0, limit - size));
      break;
    }
    parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts);
}
