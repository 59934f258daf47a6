import { InvalidRequestError } from '../../errors.js';
import { isObject, type Json, stringOf } from '../../json-values.js';
import type { MessagesRequest } from '../../schemas/anthropic/messages.js';

/**
 * Tools and tool_choice in chat's words. A client tool (no `type`, or `custom`) is a function
 * whose parameters are its input_schema. Anthropic's own tool types (`web_search_*`,
 * `code_execution_*`, `bash_*`, `text_editor_*`, `computer_*`, MCP toolsets...) run on
 * Anthropic's side or have schemas only Anthropic knows: they are dropped, knowingly, and a
 * tool_choice that names one is a 400 (the model could never call it).
 */
export interface ChatToolFields {
  tools?: Json[];
  tool_choice?: string | Json;
  parallel_tool_calls?: boolean;
}

function isClientTool(tool: Json): boolean {
  return (
    (tool.type === undefined || tool.type === null || tool.type === 'custom') && isObject(tool.input_schema)
  );
}

function functionOf(tool: Json): Json {
  return {
    type: 'function',
    function: {
      name: stringOf(tool.name),
      ...(typeof tool.description === 'string' ? { description: tool.description } : {}),
      parameters: tool.input_schema,
      ...(typeof tool.strict === 'boolean' ? { strict: tool.strict } : {}),
    },
  };
}

export function toolsToChat(request: Pick<MessagesRequest, 'tools' | 'tool_choice'>): ChatToolFields {
  const tools = (request.tools ?? []).filter(isClientTool).map(functionOf);
  const choice = request.tool_choice;
  if (choice?.type === 'tool' && !tools.some((tool) => (tool.function as Json).name === choice.name)) {
    throw new InvalidRequestError(
      `tool_choice names '${choice.name}', which is not among the tools this model can call (Anthropic's server tools are not available through a translation to chat completions).`,
      'tool_choice.name',
    );
  }
  // Chat refuses tool_choice and parallel_tool_calls without tools.
  if (tools.length === 0) return {};
  const fields: ChatToolFields = { tools };
  switch (choice?.type) {
    case 'auto':
      fields.tool_choice = 'auto';
      break;
    case 'any':
      fields.tool_choice = 'required';
      break;
    case 'none':
      fields.tool_choice = 'none';
      break;
    case 'tool':
      fields.tool_choice = { type: 'function', function: { name: choice.name } };
      break;
    default:
      break;
  }
  if (choice?.disable_parallel_tool_use === true && choice.type !== 'none')
    fields.parallel_tool_calls = false;
  return fields;
}
