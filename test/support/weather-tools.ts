import { Ajv2020 } from 'ajv/dist/2020.js';
import type OpenAI from 'openai';

/**
 * The two function tools the llama-cpp tool tests offer the tiny model, and validators for the
 * arguments it writes: a call is only right if its arguments fit the tool's schema.
 */
export type Tool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

export const weatherParameters = {
  type: 'object',
  // A bound, as a client's schema may have: the tiny model's strings are noise of any length.
  properties: { city: { type: 'string', maxLength: 24 }, days: { type: 'integer' } },
  required: ['city', 'days'],
  additionalProperties: false,
};
export const weather: Tool = {
  type: 'function',
  function: { name: 'get_weather', description: 'The forecast for a city', parameters: weatherParameters },
};
export const timeParameters = {
  type: 'object',
  properties: { zone: { type: 'string', enum: ['UTC', 'CET'] }, precise: { type: 'boolean' } },
  required: ['zone', 'precise'],
  additionalProperties: false,
};
export const clock: Tool = {
  type: 'function',
  function: { name: 'get_time', description: 'The time in a zone', parameters: timeParameters },
};

const ajv = new Ajv2020({ strict: false });
export const fitsWeather = ajv.compile(weatherParameters);
export const fitsTime = ajv.compile(timeParameters);
/** The validator of each tool, by name. */
export const fitsTool: Record<string, (value: unknown) => boolean> = {
  get_weather: fitsWeather,
  get_time: fitsTime,
};
