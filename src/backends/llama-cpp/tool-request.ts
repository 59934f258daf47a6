import type { ChatModelFunctions } from 'node-llama-cpp';
import { InvalidRequestError } from '../../errors.js';
import { withPlainNumbers } from '../../json-numbers.js';

/** One OpenAI function tool, checked. */
export interface FunctionTool {
  name: string;
  description: string | undefined;
  /** The tool's `parameters` JSON schema (an object schema; `{type: 'object'}` when absent). */
  parameters: Record<string, unknown>;
}

/**
 * What a chat request asks of tools. `functions` is what the chat template shows the model.
 * `forced` is set when the answer must be a tool call (`tool_choice` "required" or a named
 * function): the tools it may call and the JSON schema its output is held to.
 */
export interface ToolRequest {
  functions: ChatModelFunctions | undefined;
  forced: { tools: FunctionTool[]; schema: Record<string, unknown> } | undefined;
  /**
   * Set when the model may answer in text or call a tool (`tool_choice` "auto", the default):
   * the tools a call it writes may name, and whether it may write several.
   */
  auto?: { tools: FunctionTool[]; parallel: boolean } | undefined;
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function toolsOf(value: unknown): FunctionTool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidRequestError("'tools' must be a list of tools.", 'tools');
  const names = new Set<string>();
  return value.map((tool: unknown, index): FunctionTool => {
    const param = `tools[${index}]`;
    if (!isRecord(tool) || tool.type !== 'function' || !isRecord(tool.function))
      throw new InvalidRequestError(
        `${param}: in-process models take function tools only ({type: 'function', function: {name, parameters}}).`,
        param,
      );
    const { name, description, parameters } = tool.function;
    if (typeof name !== 'string' || !NAME.test(name))
      throw new InvalidRequestError(
        `${param}.function.name must be 1 to 64 letters, digits, underscores or dashes.`,
        `${param}.function.name`,
      );
    if (names.has(name))
      throw new InvalidRequestError(
        `${param}: the tool name '${name}' is given twice.`,
        `${param}.function.name`,
      );
    names.add(name);
    if (description !== undefined && description !== null && typeof description !== 'string')
      throw new InvalidRequestError(
        `${param}.function.description must be a string.`,
        `${param}.function.description`,
      );
    // OpenAI's rule too: a function's parameters are an object schema; it also keeps the
    // streamed arguments one JSON object whose end is found by counting brackets.
    if (
      parameters !== undefined &&
      parameters !== null &&
      (!isRecord(parameters) || parameters.type !== 'object')
    )
      throw new InvalidRequestError(
        `${param}.function.parameters must be a JSON schema of type 'object'.`,
        `${param}.function.parameters`,
      );
    return {
      name,
      description: typeof description === 'string' ? description : undefined,
      parameters: isRecord(parameters) ? withPlainNumbers(parameters) : { type: 'object', properties: {} },
    };
  });
}

function named(tools: FunctionTool[], name: unknown, param: string): FunctionTool {
  const tool = tools.find((candidate) => candidate.name === name);
  if (!tool)
    throw new InvalidRequestError(
      `'${param}' names the function '${String(name)}', which is not in 'tools'.`,
      param,
    );
  return tool;
}

/** The tools the answer must call one of, or undefined when it may answer in text. */
function forcedTools(choice: unknown, tools: FunctionTool[]): FunctionTool[] | undefined {
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'none') return undefined;
  if (choice === 'required') return tools;
  if (isRecord(choice) && choice.type === 'function' && isRecord(choice.function))
    return [named(tools, choice.function.name, 'tool_choice')];
  if (isRecord(choice) && choice.type === 'allowed_tools' && isRecord(choice.allowed_tools)) {
    const { mode, tools: allowed } = choice.allowed_tools;
    if ((mode === 'auto' || mode === 'required') && Array.isArray(allowed) && allowed.length > 0) {
      if (mode === 'auto') return undefined;
      return allowed.map((item: unknown) =>
        named(
          tools,
          isRecord(item) && isRecord(item.function) ? item.function.name : undefined,
          'tool_choice',
        ),
      );
    }
  }
  throw new InvalidRequestError(
    "'tool_choice' must be 'none', 'auto', 'required', {type: 'function', function: {name}} or {type: 'allowed_tools', allowed_tools: {mode, tools}}.",
    'tool_choice',
  );
}

/** The tools an `auto` answer may call: all of them, or those `allowed_tools` names. */
function autoTools(choice: unknown, tools: FunctionTool[]): FunctionTool[] {
  if (!isRecord(choice) || choice.type !== 'allowed_tools' || !isRecord(choice.allowed_tools)) return tools;
  const allowed = choice.allowed_tools.tools;
  return Array.isArray(allowed)
    ? allowed.map((item: unknown) =>
        named(
          tools,
          isRecord(item) && isRecord(item.function) ? item.function.name : undefined,
          'tool_choice',
        ),
      )
    : tools;
}

/**
 * The JSON a forced call is generated as: `{"name": ..., "arguments": {...}}`, the name one of
 * the tools' and the arguments held to that tool's schema (node-llama-cpp's grammar writes the
 * properties in this order, which the streamed answer relies on).
 */
function callSchema(tools: FunctionTool[]): Record<string, unknown> {
  const calls = tools.map((tool) => ({
    type: 'object',
    properties: { name: { const: tool.name }, arguments: tool.parameters },
  }));
  return calls.length === 1 ? (calls[0] as Record<string, unknown>) : { oneOf: calls };
}

/** Reads `tools`, `tool_choice` and `parallel_tool_calls` of a chat request. */
export function readToolRequest(body: Record<string, unknown>): ToolRequest {
  const tools = toolsOf(body.tools);
  const choice = body.tool_choice;
  const parallel = body.parallel_tool_calls;
  if (parallel !== undefined && parallel !== null && typeof parallel !== 'boolean')
    throw new InvalidRequestError("'parallel_tool_calls' must be true or false.", 'parallel_tool_calls');
  if (tools.length === 0) {
    if (choice !== undefined && choice !== null && choice !== 'none')
      throw new InvalidRequestError("'tool_choice' is only allowed when 'tools' are given.", 'tool_choice');
    return { functions: undefined, forced: undefined };
  }
  const functions: Record<string, { description?: string; params?: ChatModelFunctions[string]['params'] }> =
    {};
  for (const tool of tools)
    functions[tool.name] = {
      ...(tool.description !== undefined ? { description: tool.description } : {}),
      params: tool.parameters as ChatModelFunctions[string]['params'],
    };
  const forced = forcedTools(choice, tools);
  if (forced) return { functions, forced: { tools: forced, schema: callSchema(forced) } };
  if (choice === 'none') return { functions, forced: undefined };
  return {
    functions,
    forced: undefined,
    auto: { tools: autoTools(choice, tools), parallel: parallel !== false },
  };
}
