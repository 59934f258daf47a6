import type { AnswerShape, FinishReason, TokenUsage } from './answer-shape.js';
import { chatChunks, chatCompletion } from './chat-chunks.js';
import { toolCallId } from './tool-call-answer.js';
import { type DetectedCall, type DetectorEvent, ToolCallDetector } from './tool-call-detector.js';
import type { CallSyntax } from './tool-call-syntax.js';

/**
 * A chat answer under `tool_choice: auto`: text, calls the model wrote in its template's syntax
 * (found by ToolCallDetector), or text then calls, in OpenAI's shape. Streamed, the role goes
 * with the first delta (whether it is text or a call is not known before), then content deltas,
 * then each call's id and name and its arguments in fragments.
 */
export function autoToolAnswer(options: {
  id: string;
  created: number;
  model: string;
  includeUsage: boolean;
  syntax: CallSyntax;
  names: readonly string[];
  parallel: boolean;
}): AnswerShape {
  const chunks = chatChunks(options);
  const chunk = chunks.chunk;
  const detector = () => new ToolCallDetector(options.syntax, options.names, options.parallel);
  const finishOf = (calls: DetectedCall[], finishReason: FinishReason) =>
    calls.length > 0 && calls.every((call) => call.complete) ? 'tool_calls' : finishReason;
  const streamed = detector();
  const ids: string[] = [];
  let opened = false;
  const open = (delta: Record<string, unknown>, content: string | null) => {
    if (opened) return delta;
    opened = true;
    return { role: 'assistant', content, refusal: null, ...delta };
  };
  const chunksOf = (events: DetectorEvent[]) =>
    events.map((event) => {
      if (event.type === 'content') {
        if (!opened) return chunk(open({}, event.text), null);
        return chunk({ content: event.text }, null);
      }
      if (event.type === 'call') {
        ids[event.index] = toolCallId();
        const head = {
          index: event.index,
          id: ids[event.index],
          type: 'function',
          function: { name: event.name, arguments: '' },
        };
        return chunk(open({ tool_calls: [head] }, null), null);
      }
      return chunk({ tool_calls: [{ index: event.index, function: { arguments: event.fragment } }] }, null);
    });
  return {
    json: (text: string, finishReason: FinishReason, usage: TokenUsage) => {
      const read = detector();
      read.push(text);
      read.end();
      const { content, calls } = read.result();
      return chatCompletion(
        options,
        {
          content,
          tool_calls: calls.map((call) => ({
            id: toolCallId(),
            type: 'function',
            function: { name: call.name, arguments: call.arguments },
          })),
        },
        finishOf(calls, finishReason),
        usage,
      );
    },
    opening: () => undefined,
    delta: (text: string) => chunksOf(streamed.push(text)),
    finish: (finishReason: FinishReason) => {
      const tail = chunksOf(streamed.end());
      const finish = chunk(opened ? {} : open({}, ''), finishOf(streamed.calls, finishReason));
      // The shape tells one chunk at the end: what was held back rides with the finish.
      return tail.length === 0 ? finish : mergeTail(tail, finish);
    },
    usage: chunks.usage,
  };
}

/**
 * Text held back until the end (it might have begun a call) goes out in the finishing chunk:
 * its content deltas joined, a valid delta since content and finish_reason may share a chunk.
 */
function mergeTail(
  tail: Record<string, unknown>[],
  finish: Record<string, unknown>,
): Record<string, unknown> {
  const deltas = tail.map(
    (item) => (item.choices as Array<{ delta: Record<string, unknown> }>)[0]?.delta ?? {},
  );
  const merged: Record<string, unknown> = {};
  let content = '';
  for (const delta of deltas) {
    for (const [key, value] of Object.entries(delta)) if (key !== 'content') merged[key] = value;
    if (typeof delta.content === 'string') content += delta.content;
  }
  merged.content = content;
  const choices = finish.choices as Array<Record<string, unknown>>;
  return { ...finish, choices: [{ ...choices[0], delta: merged }] };
}
