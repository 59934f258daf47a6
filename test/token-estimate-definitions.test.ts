import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';

/**
 * Tool and response-format schemas are part of the prompt a provider bills (and a token-rate
 * limit must see), though no message holds them.
 */

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Get the current weather for a city, in the units the user prefers.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, units: { type: 'string', enum: ['metric', 'imperial'] } },
        required: ['city'],
      },
    },
  },
];
const messages = [{ role: 'user', content: 'Weather in Paris?' }];

describe('prompt estimates count definitions', () => {
  it('chat: tools, legacy functions and a response format schema', () => {
    const bare = estimatePromptTokens('chat.completions', { messages });
    const toolsJson = countTokens(JSON.stringify(tools));
    expect(estimatePromptTokens('chat.completions', { messages, tools })).toBe(bare + toolsJson);
    const functions = tools.map((tool) => tool.function);
    expect(estimatePromptTokens('chat.completions', { messages, functions })).toBe(
      bare + countTokens(JSON.stringify(functions)),
    );
    const response_format = {
      type: 'json_schema',
      json_schema: { name: 'w', schema: tools[0]?.function.parameters },
    };
    expect(estimatePromptTokens('chat.completions', { messages, response_format })).toBe(
      bare + countTokens(JSON.stringify(response_format)),
    );
  });

  it('responses: tools and the text format', () => {
    const bare = estimatePromptTokens('responses', { input: 'Weather in Paris?' });
    const flat = [{ type: 'function', name: 'get_weather', parameters: tools[0]?.function.parameters }];
    expect(estimatePromptTokens('responses', { input: 'Weather in Paris?', tools: flat })).toBe(
      bare + countTokens(JSON.stringify(flat)),
    );
    const text = { format: { type: 'json_schema', name: 'w', schema: { type: 'object' } } };
    expect(estimatePromptTokens('responses', { input: 'Weather in Paris?', text })).toBe(
      bare + countTokens(JSON.stringify(text)),
    );
  });
});
