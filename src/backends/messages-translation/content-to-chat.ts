import { InvalidRequestError } from '../../errors.js';
import { isObject, type Json, listOf, objectOf, stringOf } from '../../json-values.js';
import type { ContentBlock, InputMessage } from '../../schemas/anthropic/messages.js';

/**
 * A Messages conversation as chat messages. What cannot be said to a chat model is dropped on
 * purpose, never by accident:
 * - `cache_control` everywhere (chat servers cache prefixes on their own);
 * - `thinking` / `redacted_thinking` blocks of earlier turns (their signatures mean nothing to
 *   another model) and Anthropic's server-tool blocks (`server_tool_use`, `*_tool_result`,
 *   `container_upload`, `tool_reference`): their work was done on Anthropic's side.
 * Anything else a chat model cannot take (an image or document by Files API id, a PDF by URL, a
 * block type the gateway does not know and that has no text) is a 400 naming the block.
 */

/** Blocks of earlier turns that only Anthropic can use: dropped knowingly. */
const DROPPED_BLOCKS = new Set([
  'thinking',
  'redacted_thinking',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'tool_search_tool_result',
  'mcp_tool_use',
  'mcp_tool_result',
  'container_upload',
  'tool_reference',
]);

type ChatPart = Json;
export type ChatMessage = Json;

/** `messages[2].content[0]`: the param a 400 names, in the gateway's OpenAI-style paths. */
type Where = string;

function untranslatable(what: string, where: Where): never {
  throw new InvalidRequestError(
    `${what} cannot be sent to this model: it is served through a translation to chat completions.`,
    where,
  );
}

function imagePart(block: Json, where: Where): ChatPart {
  const source = objectOf(block.source);
  if (source.type === 'base64' && typeof source.data === 'string') {
    const mediaType = stringOf(source.media_type) || 'image/png';
    return { type: 'image_url', image_url: { url: `data:${mediaType};base64,${source.data}` } };
  }
  if (source.type === 'url' && typeof source.url === 'string')
    return { type: 'image_url', image_url: { url: source.url } };
  return untranslatable(`An image with source type '${stringOf(source.type)}'`, `${where}.source.type`);
}

/** Documents: a PDF as a chat `file` part, text and content documents as text. */
function documentParts(block: Json, where: Where): ChatPart[] {
  const source = objectOf(block.source);
  const title = stringOf(block.title);
  const titled = (text: string) => (title ? `${title}\n\n${text}` : text);
  switch (source.type) {
    case 'base64': {
      const mediaType = stringOf(source.media_type) || 'application/pdf';
      const data = `data:${mediaType};base64,${stringOf(source.data)}`;
      return [{ type: 'file', file: { filename: title || 'document.pdf', file_data: data } }];
    }
    case 'text':
      return [{ type: 'text', text: titled(stringOf(source.data)) }];
    case 'content': {
      const inner =
        typeof source.content === 'string' ? [{ type: 'text', text: source.content }] : source.content;
      const parts = listOf(inner).flatMap((item, i) =>
        blockParts(objectOf(item) as ContentBlock, `${where}.source.content[${i}]`),
      );
      return title ? [{ type: 'text', text: title }, ...parts] : parts;
    }
    default:
      return untranslatable(`A document with source type '${stringOf(source.type)}'`, `${where}.source.type`);
  }
}

function searchResultText(block: Json): string {
  const body = listOf(block.content)
    .map((item) => stringOf(objectOf(item).text))
    .filter((text) => text.length > 0)
    .join('\n\n');
  const heading = [stringOf(block.title), stringOf(block.source)].filter((s) => s.length > 0).join(' - ');
  return heading ? `${heading}\n\n${body}` : body;
}

/** The chat parts of one user-side block (text, image, document, search result). */
function blockParts(block: ContentBlock, where: Where): ChatPart[] {
  switch (block.type) {
    case 'text':
      return [{ type: 'text', text: stringOf(block.text) }];
    case 'image':
      return [imagePart(block, where)];
    case 'document':
      return documentParts(block, where);
    case 'search_result':
      return [{ type: 'text', text: searchResultText(block) }];
    default:
      if (DROPPED_BLOCKS.has(block.type)) return [];
      // A newer text-bearing block still says what it says.
      if (typeof block.text === 'string') return [{ type: 'text', text: block.text }];
      return untranslatable(`A content block of type '${block.type}'`, `${where}.type`);
  }
}

/** One text part stays a plain string: the form every chat server and template takes. */
function contentOf(parts: ChatPart[]): string | ChatPart[] {
  const only = parts[0];
  if (parts.length === 1 && only?.type === 'text') return stringOf(only.text);
  return parts;
}

function textOf(blocks: readonly ContentBlock[]): string {
  return blocks
    .filter((block) => block.type === 'text')
    .map((block) => stringOf(block.text))
    .join('\n\n');
}

/**
 * A tool result as a `tool` message. Chat tool messages carry text only: images (and PDFs) the
 * tool returned follow in a user message. `is_error` is said in the text, the one place a chat
 * model reads it.
 */
function toolResult(block: ContentBlock, where: Where): { message: ChatMessage; media: ChatPart[] } {
  const raw = typeof block.content === 'string' ? [{ type: 'text', text: block.content }] : block.content;
  const texts: string[] = [];
  const media: ChatPart[] = [];
  listOf(raw).forEach((item, i) => {
    for (const part of blockParts(objectOf(item) as ContentBlock, `${where}.content[${i}]`)) {
      if (part.type === 'text') texts.push(stringOf(part.text));
      else media.push(part);
    }
  });
  const text = texts.join('\n\n');
  const content = block.is_error === true ? `Error: ${text || 'the tool failed'}` : text;
  return { message: { role: 'tool', tool_call_id: stringOf(block.tool_use_id), content }, media };
}

/**
 * A user turn: its tool results first, as `tool` messages in their order (chat wants them right
 * after the assistant's tool calls), then what the user said with any images the tools returned.
 */
function userMessages(blocks: readonly ContentBlock[], where: Where): ChatMessage[] {
  const out: ChatMessage[] = [];
  const media: ChatPart[] = [];
  const parts: ChatPart[] = [];
  blocks.forEach((block, i) => {
    if (block.type === 'tool_result') {
      const result = toolResult(block, `${where}[${i}]`);
      out.push(result.message);
      media.push(...result.media);
    } else parts.push(...blockParts(block, `${where}[${i}]`));
  });
  const all = [...media, ...parts];
  if (all.length > 0) out.push({ role: 'user', content: contentOf(all) });
  return out;
}

/** Tool input is an object; anything else is sent as `{}` rather than as arguments no parser takes. */
function argumentsOf(input: unknown): string {
  return JSON.stringify(isObject(input) ? input : {});
}

/** An assistant turn: its text, and its tool uses as tool_calls. Thinking is dropped (see above). */
function assistantMessage(blocks: readonly ContentBlock[], where: Where): ChatMessage | undefined {
  const texts: string[] = [];
  const toolCalls: Json[] = [];
  blocks.forEach((block, i) => {
    if (block.type === 'tool_use') {
      toolCalls.push({
        id: stringOf(block.id),
        type: 'function',
        function: { name: stringOf(block.name), arguments: argumentsOf(block.input) },
      });
      return;
    }
    for (const part of blockParts(block, `${where}[${i}]`)) {
      if (part.type !== 'text') untranslatable('Media in an assistant turn', `${where}[${i}]`);
      texts.push(stringOf(part.text));
    }
  });
  const text = texts.join('\n\n');
  if (toolCalls.length === 0 && text === '') return undefined;
  return {
    role: 'assistant',
    content: text === '' ? null : text,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
  };
}

/** The top-level `system` (text blocks) as one system message: chat templates want a string. */
export function systemToChat(system: readonly ContentBlock[] | undefined): ChatMessage[] {
  const text = textOf(system ?? []);
  return text === '' ? [] : [{ role: 'system', content: text }];
}

/**
 * The conversation. A mid-conversation `role: "system"` message (Claude Code sends one for
 * models it does not know) becomes a chat system message where it stands: chat servers take
 * those anywhere, so it is never refused here.
 */
export function messagesToChat(messages: readonly InputMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  messages.forEach((message, i) => {
    const where = `messages[${i}].content`;
    if (message.role === 'user') out.push(...userMessages(message.content, where));
    else if (message.role === 'assistant') {
      const assistant = assistantMessage(message.content, where);
      if (assistant) out.push(assistant);
    } else {
      const text = textOf(message.content);
      if (text !== '') out.push({ role: 'system', content: text });
    }
  });
  return out;
}
