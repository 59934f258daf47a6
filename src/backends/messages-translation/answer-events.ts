import { type Json, listOf, objectOf } from '../../json-values.js';
import type { BackendResponse } from '../backend.js';
import { chatStreamEvents } from './chat-sse-events.js';
import type { ChatStreamTranslator } from './chat-stream-to-events.js';

/** A chat stream's bytes as Anthropic's events, translated chunk by chunk as they arrive. */
export async function* eventsOfChatStream(
  body: BackendResponse['body'],
  translator: ChatStreamTranslator,
): AsyncGenerator<Buffer> {
  let sawDone = false;
  for await (const item of chatStreamEvents(body)) {
    if (item.kind === 'done') {
      sawDone = true;
      break;
    }
    const out = translator.chunk(item.chunk);
    if (out) yield Buffer.from(out);
  }
  const last = translator.endOfStream(sawDone);
  if (last) yield Buffer.from(last);
}

/**
 * A whole chat answer to a streamed request (a server that ignores `stream`): told as the one
 * chunk it amounts to, so the client still gets the events it asked for.
 */
export async function* eventsOfChatAnswer(
  answer: Json,
  translator: ChatStreamTranslator,
): AsyncGenerator<Buffer> {
  const choice = objectOf(listOf(answer.choices)[0]);
  const message = objectOf(choice.message);
  // Stream deltas number their tool calls; a whole message lists them.
  const toolCalls = listOf(message.tool_calls).map((call, index) => ({ index, ...objectOf(call) }));
  const chunk: Json = {
    id: answer.id,
    model: answer.model,
    choices: [
      {
        index: 0,
        delta: { ...message, tool_calls: toolCalls },
        finish_reason: choice.finish_reason,
        stop_reason: choice.stop_reason,
      },
    ],
    usage: answer.usage,
  };
  yield Buffer.from(translator.chunk(chunk) + translator.end());
}
