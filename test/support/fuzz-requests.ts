import fc from 'fast-check';
import {
  edgeNumber,
  extraFields,
  field,
  fuzzHeaders,
  fuzzQuery,
  hostileValue,
  jsonContentType,
  jsonText,
  multipartBody,
  numberLikeString,
  pathSegment,
  queryFor,
  shortText,
  text,
} from './fuzz-arbitraries.js';
import { type DiscoveredRoute, routeKey } from './fuzz-routes.js';

/** One request as the fuzzer sends it (to app.inject or over real HTTP). */
export interface FuzzRequest {
  /** The route pattern this request was generated for (`POST /admin/keys/:id/rotate`), or `stray`. */
  route: string;
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** What the generators may name: real ids (so requests reach the handlers) and credentials. */
export interface FuzzContext {
  /** Configured model names plus names no route serves. */
  models: readonly string[];
  /** Teams and keys the fuzzer may change, revoke, rotate and delete. */
  teamIds: readonly string[];
  keyIds: readonly string[];
  teamKey: string;
  adminKey: string;
}

type BodyPart = Pick<FuzzRequest, 'headers' | 'body'>;

const positiveSmall = fc.integer({ min: 1, max: 64 });

/** Credentials as a client might present them: right, wrong, missing, or the other kind. */
function credentials(ctx: FuzzContext, area: 'v1' | 'admin' | 'open'): fc.Arbitrary<Record<string, string>> {
  const right = area === 'admin' ? ctx.adminKey : ctx.teamKey;
  const other = area === 'admin' ? ctx.teamKey : ctx.adminKey;
  const wrong: Array<Record<string, string>> = [
    {},
    { authorization: `Bearer ${other}` },
    { authorization: 'Bearer ' },
    { authorization: 'Basic Zm9vOmJhcg==' },
    { authorization: `Bearer tg-zzzzzzzz0000-${'A'.repeat(43)}` },
    { authorization: `bearer ${right}` },
    { authorization: `Bearer ${right} ${right}` },
    { authorization: 'Bearer x'.repeat(50) },
  ];
  const presented: Array<Record<string, string>> = [{ 'api-key': right }, { 'x-api-key': right }];
  return fc.oneof(
    { weight: 24, arbitrary: fc.constant<Record<string, string>>({ authorization: `Bearer ${right}` }) },
    { weight: 2, arbitrary: fc.constantFrom(...presented) },
    { weight: 2, arbitrary: fc.constantFrom(...wrong) },
  );
}

const modelName = (ctx: FuzzContext) =>
  field(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ctx.models) }, { weight: 1, arbitrary: shortText }),
  );

const message = fc.record(
  {
    role: field(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function', 'usr')),
    content: field(
      fc.oneof(
        text,
        fc.array(
          fc.record(
            {
              type: field(fc.constantFrom('text', 'image_url', 'input_audio', 'file')),
              text: field(text),
              image_url: field(
                fc.record({ url: field(fc.constantFrom('https://x/y.png', 'data:image/png;base64,AAAA')) }),
              ),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 3 },
        ),
      ),
    ),
    name: field(shortText),
    tool_call_id: field(shortText),
    tool_calls: field(
      fc.array(
        fc.record({
          id: field(shortText),
          type: field(fc.constant('function')),
          function: field(fc.record({ name: field(shortText), arguments: field(shortText) })),
        }),
        { maxLength: 2 },
      ),
    ),
  },
  { requiredKeys: ['role', 'content'] },
);

const tools = field(
  fc.array(
    fc.record({
      type: field(fc.constantFrom('function', 'web_search', 'file_search')),
      function: field(
        fc.record(
          { name: field(shortText), parameters: field(fc.jsonValue({ maxDepth: 2 })) },
          { requiredKeys: [] },
        ),
      ),
    }),
    { maxLength: 2 },
  ),
);

/** Output-size fields: where huge numbers reach the quota arithmetic. */
const outputTokens = field(
  fc.oneof(
    { weight: 4, arbitrary: positiveSmall },
    { weight: 1, arbitrary: edgeNumber },
    { weight: 1, arbitrary: numberLikeString },
  ),
);
const streamFlag = field(
  fc.oneof({ weight: 3, arbitrary: fc.boolean() }, { weight: 1, arbitrary: numberLikeString }),
);

type Fields = Record<string, fc.Arbitrary<unknown>>;

/**
 * A body for one endpoint: usually plausible, so requests get past validation to the quota,
 * cache, routing and upstream paths; often with one or two fields replaced by hostile values
 * or dropped (so each report names one field); sometimes with unknown fields, or not an object.
 */
function bodyOf(fields: Fields, required: readonly string[]): fc.Arbitrary<unknown> {
  const base = fc.record(fields, { requiredKeys: required as Array<keyof Fields> }) as fc.Arbitrary<
    Record<string, unknown>
  >;
  const keys = Object.keys(fields);
  const mutation = fc.tuple(
    fc.constantFrom(...keys),
    fc.oneof(
      { weight: 4, arbitrary: hostileValue.map((value) => ({ value })) },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
  );
  return fc.oneof(
    { weight: 6, arbitrary: base },
    {
      weight: 3,
      arbitrary: fc
        .tuple(base, fc.array(mutation, { minLength: 1, maxLength: 2 }))
        .map(([body, mutations]) => {
          const out: Record<string, unknown> = { ...body };
          for (const [key, change] of mutations) {
            if (change === undefined) delete out[key];
            else out[key] = change.value;
          }
          return out;
        }),
    },
    { weight: 1, arbitrary: fc.tuple(base, extraFields).map(([body, extra]) => ({ ...extra, ...body })) },
    { weight: 1, arbitrary: hostileValue },
  );
}

function chatBody(ctx: FuzzContext) {
  return bodyOf(
    {
      model: modelName(ctx),
      messages: field(fc.array(message, { minLength: 1, maxLength: 4 })),
      stream: streamFlag,
      stream_options: field(fc.record({ include_usage: field(fc.boolean()) }, { requiredKeys: [] })),
      max_tokens: outputTokens,
      max_completion_tokens: outputTokens,
      n: field(fc.oneof(positiveSmall, fc.constantFrom(128, 129, 0))),
      temperature: field(fc.double({ min: 0, max: 2, noNaN: true })),
      top_p: field(fc.double({ min: 0, max: 1, noNaN: true })),
      seed: field(fc.integer()),
      tools,
      tool_choice: field(fc.constantFrom('auto', 'none', 'required')),
      response_format: field(
        fc.record({ type: field(fc.constantFrom('text', 'json_object', 'json_schema')) }),
      ),
      user: field(shortText),
      metadata: field(fc.dictionary(shortText, shortText, { maxKeys: 3 })),
      logprobs: field(fc.boolean()),
      logit_bias: field(fc.dictionary(fc.integer({ min: 0, max: 100_000 }).map(String), edgeNumber)),
    },
    ['model', 'messages'],
  );
}

const promptValue = fc.oneof(
  text,
  fc.array(text, { maxLength: 4 }),
  fc.array(fc.integer({ min: -5, max: 200_000 }), { maxLength: 16 }),
  fc.array(fc.array(fc.integer({ min: -5, max: 200_000 }), { maxLength: 8 }), { maxLength: 4 }),
);

function completionFields(ctx: FuzzContext, withModel: boolean) {
  return {
    ...(withModel ? { model: modelName(ctx) } : {}),
    prompt: field(promptValue),
    stream: streamFlag,
    stream_options: field(fc.record({ include_usage: field(fc.boolean()) }, { requiredKeys: [] })),
    max_tokens: outputTokens,
    n: field(fc.oneof(positiveSmall, fc.constantFrom(128, 129, 0))),
    best_of: field(positiveSmall),
    echo: field(fc.boolean()),
    suffix: field(shortText),
    logprobs: field(fc.integer({ min: 0, max: 5 })),
    temperature: field(fc.double({ min: 0, max: 2, noNaN: true })),
  };
}

function completionBody(ctx: FuzzContext, withModel = true) {
  return bodyOf(completionFields(ctx, withModel), withModel ? ['model', 'prompt'] : ['prompt']);
}

function embeddingBody(ctx: FuzzContext) {
  return bodyOf(
    {
      model: modelName(ctx),
      input: field(promptValue),
      encoding_format: field(fc.constantFrom('float', 'base64', 'int8')),
      dimensions: field(fc.oneof(positiveSmall, edgeNumber)),
      user: field(shortText),
    },
    ['model', 'input'],
  );
}

function responsesBody(ctx: FuzzContext) {
  const item = fc.record(
    {
      type: field(fc.constantFrom('message', 'function_call_output', 'reasoning', 'input_text')),
      role: field(fc.constantFrom('user', 'system', 'developer', 'assistant', 'usr')),
      content: field(
        fc.oneof(
          text,
          fc.array(
            fc.record({ type: field(fc.constantFrom('input_text', 'input_image')), text: field(text) }),
            {
              maxLength: 2,
            },
          ),
        ),
      ),
    },
    { requiredKeys: [] },
  );
  return bodyOf(
    {
      model: modelName(ctx),
      input: field(fc.oneof(text, fc.array(item, { maxLength: 3 }))),
      instructions: field(text),
      max_output_tokens: outputTokens,
      stream: streamFlag,
      tools,
      previous_response_id: field(shortText),
      store: field(fc.boolean()),
      text: field(
        fc.record({ format: field(fc.record({ type: field(fc.constantFrom('text', 'json_object')) })) }),
      ),
      reasoning: field(fc.record({ effort: field(fc.constantFrom('low', 'medium', 'high')) })),
    },
    ['model', 'input'],
  );
}

/** Anthropic's Messages API: content as text or blocks, tools, tool_choice, system, thinking. */
function messagesBody(ctx: FuzzContext, countTokens = false) {
  const textBlock = fc.record(
    {
      type: fc.constant('text'),
      text,
      cache_control: field(fc.record({ type: field(fc.constant('ephemeral')) })),
    },
    { requiredKeys: ['type', 'text'] },
  );
  // Mostly text, so that many requests get through; the rest probe the translation.
  const block = fc.oneof(
    { weight: 4, arbitrary: textBlock },
    {
      weight: 1,
      arbitrary: fc.record(
        {
          type: fc.constantFrom('image', 'tool_use', 'tool_result', 'thinking', 'document', 'nope'),
          text: field(text),
          id: field(shortText),
          name: field(shortText),
          input: field(fc.oneof(fc.constant({}), fc.record({ q: field(text) }), text)),
          tool_use_id: field(shortText),
          content: field(fc.oneof(text, fc.array(textBlock, { maxLength: 2 }))),
          source: field(
            fc.record({
              type: field(fc.constantFrom('base64', 'url', 'file')),
              media_type: field(fc.constantFrom('image/png', 'image/jpeg', 'text/plain', 'x/y')),
              data: field(fc.constantFrom('iVBORw0KGgo=', '', '%%%')),
              url: field(fc.constantFrom('https://example.com/a.png', 'ftp://x', '')),
            }),
          ),
        },
        { requiredKeys: ['type'] },
      ),
    },
  );
  const message = fc.record(
    {
      role: fc.constantFrom('user', 'user', 'user', 'assistant', 'system', 'usr'),
      content: fc.oneof(text, fc.array(block, { minLength: 1, maxLength: 3 })),
    },
    { requiredKeys: ['role', 'content'] },
  );
  const messagesTools = field(
    fc.array(
      fc.record(
        {
          name: shortText,
          description: field(text),
          input_schema: field(
            fc.oneof(fc.constant({ type: 'object', properties: {} }), fc.constant({ type: 'string' })),
          ),
          type: field(fc.constantFrom('custom', 'web_search_20250305', 'bash_20250124')),
        },
        { requiredKeys: ['name'] },
      ),
      { maxLength: 3 },
    ),
  );
  return bodyOf(
    {
      model: modelName(ctx),
      messages: field(fc.array(message, { minLength: 1, maxLength: 4 })),
      system: field(fc.oneof(text, fc.array(textBlock, { maxLength: 2 }))),
      tools: messagesTools,
      tool_choice: field(
        fc.record(
          { type: field(fc.constantFrom('auto', 'any', 'tool', 'none', 'some')), name: field(shortText) },
          { requiredKeys: [] },
        ),
      ),
      thinking: field(
        fc.record({
          type: field(fc.constantFrom('enabled', 'disabled')),
          budget_tokens: field(positiveSmall),
        }),
      ),
      ...(countTokens
        ? {}
        : {
            max_tokens: outputTokens,
            stop_sequences: field(fc.array(shortText, { maxLength: 3 })),
            temperature: field(fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), edgeNumber)),
            stream: streamFlag,
            metadata: field(fc.record({ user_id: field(shortText) })),
          }),
    },
    countTokens ? ['model', 'messages'] : ['model', 'messages', 'max_tokens'],
  );
}

function imageBody(ctx: FuzzContext) {
  return bodyOf(
    {
      model: modelName(ctx),
      prompt: field(text),
      n: field(fc.oneof(positiveSmall, edgeNumber)),
      size: field(fc.constantFrom('256x256', '1024x1024', '0x0', '99999x99999', 'auto')),
      response_format: field(fc.constantFrom('url', 'b64_json')),
      quality: field(fc.constantFrom('standard', 'hd', 'low')),
    },
    ['prompt'],
  );
}

function moderationBody(ctx: FuzzContext) {
  return bodyOf({ model: modelName(ctx), input: field(fc.oneof(text, fc.array(text, { maxLength: 4 }))) }, [
    'input',
  ]);
}

function speechBody(ctx: FuzzContext) {
  return bodyOf(
    {
      model: modelName(ctx),
      input: field(text),
      voice: field(fc.constantFrom('alloy', 'echo', 'nova', 'nobody')),
      response_format: field(fc.constantFrom('mp3', 'wav', 'opus', 'pcm', 'exe')),
      speed: field(fc.oneof(fc.double({ min: 0.25, max: 4, noNaN: true }), edgeNumber)),
    },
    ['model', 'input', 'voice'],
  );
}

const budget = fc.record(
  {
    period: field(fc.constantFrom('day', 'month', 'lifetime', 'week')),
    max_tokens: field(fc.oneof(positiveSmall, edgeNumber)),
    max_usd: field(fc.oneof(fc.double({ min: 0.01, max: 1_000, noNaN: true }), edgeNumber)),
  },
  { requiredKeys: [] },
);
const limits = fc.record(
  {
    requests_per_minute: field(fc.oneof(positiveSmall, edgeNumber, fc.constant(null))),
    requests_per_day: field(fc.oneof(positiveSmall, edgeNumber, fc.constant(null))),
    tokens_per_minute: field(fc.oneof(positiveSmall, edgeNumber, fc.constant(null))),
    max_concurrent: field(fc.oneof(positiveSmall, edgeNumber, fc.constant(null))),
  },
  { requiredKeys: [] },
);
const cachePolicy = fc.record(
  {
    enabled: field(fc.boolean()),
    ttl: field(fc.oneof(positiveSmall, edgeNumber)),
    max_temperature: field(fc.double({ min: 0, max: 2, noNaN: true })),
    scope: field(fc.constantFrom('team', 'key', 'global', 'world')),
  },
  { requiredKeys: [] },
);

function teamBody(ctx: FuzzContext) {
  return bodyOf(
    {
      name: field(shortText),
      models: field(fc.array(fc.oneof(fc.constantFrom(...ctx.models), shortText), { maxLength: 3 })),
      default_key_policy: field(
        fc.record(
          {
            models: field(fc.array(fc.constantFrom(...ctx.models), { maxLength: 2 })),
            expires_in_seconds: field(fc.oneof(positiveSmall, edgeNumber)),
            limits: field(limits),
            budgets: field(fc.array(budget, { maxLength: 3 })),
          },
          { requiredKeys: [] },
        ),
      ),
      limits: field(limits),
      budgets: field(fc.array(budget, { maxLength: 3 })),
      model_limits: field(
        fc.dictionary(
          fc.oneof(fc.constantFrom(...ctx.models), shortText),
          fc.record(
            { limits: field(limits), budgets: field(fc.array(budget, { maxLength: 2 })) },
            { requiredKeys: [] },
          ),
          { maxKeys: 2 },
        ),
      ),
      cache: field(cachePolicy),
      metadata: field(fc.dictionary(shortText, hostileValue, { maxKeys: 3 })),
    },
    ['name'],
  );
}

function keyBody(ctx: FuzzContext, withTeam: boolean) {
  return bodyOf(
    {
      ...(withTeam ? { team_id: field(fc.oneof(fc.constantFrom(...ctx.teamIds), shortText)) } : {}),
      name: field(shortText),
      owner: field(shortText),
      models: field(fc.array(fc.oneof(fc.constantFrom(...ctx.models), shortText), { maxLength: 3 })),
      expires_at: field(fc.oneof(fc.integer({ min: 1, max: 4_000_000_000 }), edgeNumber)),
      limits: field(limits),
      budgets: field(fc.array(budget, { maxLength: 3 })),
      cache: field(cachePolicy),
      metadata: field(fc.dictionary(shortText, hostileValue, { maxKeys: 3 })),
      ...(withTeam ? {} : { disabled: field(fc.boolean()) }),
    },
    withTeam ? ['team_id'] : [],
  );
}

const rotateBody = bodyOf(
  { grace_seconds: field(fc.oneof(fc.integer({ min: 0, max: 3_600 }), edgeNumber)) },
  [],
);

/** A JSON body, its encoding and its declared content type. */
function jsonBody(value: fc.Arbitrary<unknown>): fc.Arbitrary<BodyPart> {
  return fc
    .tuple(value.chain(jsonText), jsonContentType)
    .map(([body, type]): BodyPart => ({ headers: type === undefined ? {} : { 'content-type': type }, body }));
}

/** A request with no body, or (rarely) a stray one. */
const noBody: fc.Arbitrary<BodyPart> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ headers: {} }) },
  { weight: 1, arbitrary: jsonBody(hostileValue) },
);

function uploadBody(ctx: FuzzContext): fc.Arbitrary<BodyPart> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: multipartBody(ctx.models).map(
        ({ contentType, body }): BodyPart => ({
          headers: contentType === undefined ? {} : { 'content-type': contentType },
          body,
        }),
      ),
    },
    { weight: 1, arbitrary: jsonBody(hostileValue) },
  );
}

/** How each route's body is generated; `null` for routes that take none. */
type Shape = {
  params?: Record<string, fc.Arbitrary<string>>;
  body: fc.Arbitrary<BodyPart>;
  /** The query parameters the route reads, fuzzed more often than names it ignores. */
  query?: readonly string[];
};

/**
 * A generator for every route the app registers. A route missing here fails the suite (see
 * fuzz-endpoints.test.ts): a new endpoint needs its body shape written down, and meanwhile it
 * is still fuzzed with generic hostile input.
 */
export function routeShapes(ctx: FuzzContext): Record<string, Shape> {
  const teamId = { id: pathSegment(ctx.teamIds) };
  const keyId = { id: pathSegment(ctx.keyIds) };
  const modelId = {
    '*': fc.oneof(
      fc.constantFrom(...ctx.models),
      pathSegment(ctx.models),
      fc.tuple(pathSegment(ctx.models), pathSegment(ctx.models)).map(([a, b]) => `${a}/${b}`),
    ),
  };
  const engine = { engine: pathSegment(ctx.models) };
  const query = { body: noBody };
  const list = { body: noBody, query: ['limit', 'after', 'team_id'] };
  const usage = ['from', 'to', 'group_by', 'team_id', 'key_id', 'model'];
  const cacheQuery = ['team_id', 'key_id', 'scope'];
  return {
    'GET /v1/models': query,
    'HEAD /v1/models': query,
    'GET /v1/models/*': { params: modelId, body: noBody },
    'HEAD /v1/models/*': { params: modelId, body: noBody },
    'GET /v1/tollgate/key': query,
    'HEAD /v1/tollgate/key': query,
    'POST /v1/chat/completions': { body: jsonBody(chatBody(ctx)) },
    'POST /v1/completions': { body: jsonBody(completionBody(ctx)) },
    'POST /v1/engines/:engine/completions': {
      params: engine,
      body: jsonBody(fc.oneof(completionBody(ctx, false), completionBody(ctx, true))),
    },
    'POST /v1/embeddings': { body: jsonBody(embeddingBody(ctx)) },
    'POST /v1/responses': { body: jsonBody(responsesBody(ctx)) },
    'POST /v1/messages': { body: jsonBody(messagesBody(ctx)) },
    'POST /v1/messages/count_tokens': { body: jsonBody(messagesBody(ctx, true)) },
    'POST /v1/images/generations': { body: jsonBody(imageBody(ctx)) },
    'POST /v1/moderations': { body: jsonBody(moderationBody(ctx)) },
    'POST /v1/audio/speech': { body: jsonBody(speechBody(ctx)) },
    'POST /v1/audio/transcriptions': { body: uploadBody(ctx) },
    'POST /v1/audio/translations': { body: uploadBody(ctx) },
    'GET /healthz': query,
    'HEAD /healthz': query,
    'GET /readyz': query,
    'HEAD /readyz': query,
    'GET /admin/openapi.json': query,
    'HEAD /admin/openapi.json': query,
    'POST /admin/teams': { body: jsonBody(teamBody(ctx)) },
    'GET /admin/teams': list,
    'HEAD /admin/teams': list,
    'GET /admin/teams/:id': { params: teamId, body: noBody },
    'HEAD /admin/teams/:id': { params: teamId, body: noBody },
    'PATCH /admin/teams/:id': { params: teamId, body: jsonBody(teamBody(ctx)) },
    'DELETE /admin/teams/:id': { params: teamId, body: noBody, query: ['force'] },
    'POST /admin/keys': { body: jsonBody(keyBody(ctx, true)) },
    'GET /admin/keys': list,
    'HEAD /admin/keys': list,
    'GET /admin/keys/:id': { params: keyId, body: noBody },
    'HEAD /admin/keys/:id': { params: keyId, body: noBody },
    'PATCH /admin/keys/:id': { params: keyId, body: jsonBody(keyBody(ctx, false)) },
    'DELETE /admin/keys/:id': { params: keyId, body: noBody },
    'POST /admin/keys/:id/rotate': {
      params: keyId,
      body: fc.oneof(jsonBody(rotateBody), fc.constant({ headers: {} })),
    },
    'GET /admin/usage': { body: noBody, query: usage },
    'HEAD /admin/usage': { body: noBody, query: usage },
    'GET /admin/metrics': query,
    'HEAD /admin/metrics': query,
    'GET /admin/deployments': query,
    'HEAD /admin/deployments': query,
    // Declared backends (none of them a local server: 400) and unknown names (404).
    'POST /admin/backends/:name/refresh': {
      params: { name: pathSegment(['upstream', 'azure', 'mock']) },
      body: noBody,
    },
    'GET /admin/cache': { body: noBody, query: cacheQuery },
    'HEAD /admin/cache': { body: noBody, query: cacheQuery },
    'DELETE /admin/cache': { body: noBody, query: [...cacheQuery, 'model', 'all'] },
    'GET /admin/requests': { body: noBody, query: ['limit', 'before'] },
    'HEAD /admin/requests': { body: noBody, query: ['limit', 'before'] },
    'GET /admin/audit': list,
    'HEAD /admin/audit': list,
    // The CORS preflight answers any path: aimed at the real ones below.
    'OPTIONS /*': { params: { '*': fc.constant('') }, body: noBody },
  };
}

/** The same route with generic input only: any JSON, any encoding, any content type. */
function genericShape(route: DiscoveredRoute, ctx: FuzzContext): Shape {
  const params: Record<string, fc.Arbitrary<string>> = {};
  for (const name of route.url.match(/:(\w+)/g) ?? [])
    params[name.slice(1)] = pathSegment([...ctx.teamIds, ...ctx.keyIds]);
  if (route.url.endsWith('*')) params['*'] = pathSegment(ctx.models);
  return { params, body: jsonBody(hostileValue) };
}

function fillPath(pattern: string, values: Record<string, string>): string {
  return pattern
    .replace(/:(\w+)/g, (_, name: string) => values[name] ?? 'x')
    .replace(/\*$/, () => values['*'] ?? '');
}

function area(url: string): 'v1' | 'admin' | 'open' {
  if (url.startsWith('/v1')) return 'v1';
  if (url.startsWith('/admin')) return 'admin';
  return 'open';
}

function preflight(ctx: FuzzContext, paths: readonly string[]): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      path: fc.constantFrom(...paths),
      origin: fc.option(fc.constantFrom('https://example.com', 'null', 'http://127.0.0.1'), {
        nil: undefined,
      }),
      method: fc.option(fc.constantFrom('POST', 'GET', 'DELETE', 'PUT', 'BOGUS', ''), { nil: undefined }),
      requested: fc.option(
        fc.constantFrom('authorization, content-type', 'x-stainless-os', 'x-tollgate-cache', ''),
        {
          nil: undefined,
        },
      ),
      auth: credentials(ctx, 'v1'),
    })
    .map(({ path, origin, method, requested, auth }) => ({
      route: 'OPTIONS /*',
      method: 'OPTIONS',
      url: path,
      headers: {
        ...auth,
        ...(origin === undefined ? {} : { origin }),
        ...(method === undefined ? {} : { 'access-control-request-method': method }),
        ...(requested === undefined ? {} : { 'access-control-request-headers': requested }),
      },
    }));
}

/** A request for one discovered route: its own shape (mostly) or generic garbage. */
export function requestFor(
  route: DiscoveredRoute,
  ctx: FuzzContext,
  shapes: Record<string, Shape>,
  allPaths: readonly string[],
): fc.Arbitrary<FuzzRequest> {
  if (route.method === 'OPTIONS') return preflight(ctx, allPaths);
  const own = shapes[routeKey(route)];
  const shape = own
    ? fc.oneof(
        { weight: 4, arbitrary: fc.constant(own) },
        { weight: 1, arbitrary: fc.constant(genericShape(route, ctx)) },
      )
    : fc.constant(genericShape(route, ctx));
  const where = area(route.url);
  return shape.chain((s) =>
    fc
      .record({
        params: fc.record(s.params ?? {}),
        part: s.body,
        query: s.query
          ? fc.oneof({ weight: 1, arbitrary: fc.constant('') }, { weight: 3, arbitrary: queryFor(s.query) })
          : fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fuzzQuery }),
        headers: fuzzHeaders,
        auth: credentials(ctx, where),
      })
      .map(({ params, part, query, headers, auth }) => {
        const path = fillPath(route.url, params);
        const request: FuzzRequest = {
          route: routeKey(route),
          method: route.method,
          url: query ? `${path}?${query}` : path,
          headers: { ...headers, ...auth, ...part.headers },
        };
        if (part.body !== undefined) request.body = part.body;
        return request;
      }),
  );
}

/** Requests for no route: unknown paths, wrong methods, odd spellings of real paths. */
export function strayRequest(ctx: FuzzContext, allPaths: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const path = fc.oneof(
    fc.constantFrom(...allPaths),
    fc.constantFrom(...allPaths).map((p) => p.toUpperCase()),
    fc.constantFrom(...allPaths).map((p) => `/${p}`),
    fc.constantFrom(...allPaths).map((p) => p.replaceAll('/', '//')),
    fc.constantFrom(...allPaths).map((p) => `${p}/extra`),
    fc.constantFrom(
      '/',
      '/v1',
      '/v1/',
      '/admin',
      '/admin/',
      '/chat/completions',
      '/v2/chat/completions',
      '/favicon.ico',
    ),
    fc.constantFrom(
      '/v1/%',
      '/v1/%zz',
      '/v1/..%2f..%2fadmin/teams',
      '/v1/chat%2Fcompletions',
      '/v1/./chat/completions',
    ),
    pathSegment(['x']).map((segment) => `/v1/${segment}`),
    pathSegment(['x']).map((segment) => `/admin/${segment}`),
  );
  return fc
    .record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'),
      path,
      part: fc.oneof(noBody, jsonBody(hostileValue)),
      headers: fuzzHeaders,
      auth: fc.oneof(credentials(ctx, 'v1'), credentials(ctx, 'admin')),
    })
    .map(({ method, path, part, headers, auth }) => {
      const request: FuzzRequest = {
        route: 'stray',
        method,
        url: path,
        headers: { ...headers, ...auth, ...part.headers },
      };
      if (part.body !== undefined && method !== 'GET' && method !== 'HEAD') request.body = part.body;
      return request;
    });
}

/**
 * A streamed inference request for the real-HTTP part: valid, so that it reaches the quota
 * reservation and the upstream's stream, which the client may then cut at any point.
 */
export function streamRequest(ctx: FuzzContext, streamModels: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const common = fc.record(
    {
      max_tokens: fc.oneof(positiveSmall, fc.constant(100_000)),
      stream_options: fc.record({ include_usage: fc.boolean() }),
      temperature: fc.constantFrom(0, 1),
      n: fc.integer({ min: 1, max: 3 }),
      user: shortText,
    },
    { requiredKeys: [] },
  );
  const endpoint = fc.constantFrom(
    { path: '/v1/chat/completions', input: { messages: [{ role: 'user', content: 'stream please' }] } },
    { path: '/v1/completions', input: { prompt: 'stream please' } },
    { path: '/v1/responses', input: { input: 'stream please' } },
  );
  const cacheHeaders = fc.option(
    fc.record({ 'x-tollgate-cache': fc.constantFrom('on', 'off', 'refresh') }, { requiredKeys: [] }),
    { nil: undefined },
  );
  return fc
    .record({
      endpoint,
      model: fc.constantFrom(...streamModels),
      common,
      headers: fuzzHeaders,
      cache: cacheHeaders,
    })
    .map(({ endpoint, model, common, headers, cache }) => {
      const { max_tokens, stream_options, n, ...rest } = common;
      const body: Record<string, unknown> = { ...rest, ...endpoint.input, model, stream: true };
      if (endpoint.path === '/v1/responses') {
        if (max_tokens !== undefined) body.max_output_tokens = max_tokens;
      } else {
        Object.assign(body, max_tokens === undefined ? {} : { max_tokens });
        Object.assign(body, stream_options === undefined ? {} : { stream_options });
        Object.assign(body, n === undefined ? {} : { n });
      }
      return {
        route: `POST ${endpoint.path}`,
        method: 'POST',
        url: endpoint.path,
        headers: {
          ...headers,
          ...cache,
          authorization: `Bearer ${ctx.teamKey}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      };
    });
}
