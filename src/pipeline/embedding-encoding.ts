import { encodeFloat32Base64 } from '../openai/float32-base64.js';

/**
 * The official SDKs ask for base64 embeddings by default and decode them themselves; some
 * OpenAI-compatible servers ignore `encoding_format` and send float arrays, which the SDK
 * would then mangle. Re-encode those, leave a correct body byte for byte.
 */
export function ensureBase64Embeddings(body: Buffer): Buffer {
  let parsed: { data?: Array<{ embedding?: unknown }> };
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  const data = Array.isArray(parsed.data) ? parsed.data : [];
  let changed = false;
  for (const item of data) {
    if (Array.isArray(item.embedding)) {
      item.embedding = encodeFloat32Base64(item.embedding as number[]);
      changed = true;
    }
  }
  return changed ? Buffer.from(JSON.stringify(parsed)) : body;
}
