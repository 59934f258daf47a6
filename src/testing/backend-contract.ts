import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import { type Backend, ENDPOINT_PATHS, type Endpoint, type JsonEndpoint } from '../backends/backend.js';
import { contractCall, readJson, readSse, readText, sseEvents } from './contract-reading.js';
import {
  type ContractValidators,
  embeddingVectors,
  expectChatChunkShape,
  expectChatCompletionShape,
  expectCompletionChunkShape,
  expectCompletionShape,
  expectResponseShape,
  expectUsage,
  responseText,
} from './contract-shapes.js';
import { observationOf } from './observed-module.js';

type Json = Record<string, unknown>;

/** A chat request body (without `model`): what makes the backend fail or wait in a known way. */
export type ContractTrigger = Json;

export interface BackendContractOptions {
  /** Shown in the suite's title. */
  name: string;
  /** Makes the backend under test, once for the suite; it is closed after it. */
  make: () => Backend | Promise<Backend>;
  /** The model every call names (`contract-model` when not given)... */
  model?: string;
  /** ...or per endpoint, where it differs (an embedding model, say). */
  models?: Partial<Record<JsonEndpoint, string>>;
  /**
   * The backend answers with the text it was given (the last user message, the prompt, the
   * input): the suite then checks the answer's text too, not only its shape.
   */
  echoes?: boolean;
  /**
   * Requests that make the backend fail or wait in a known way. A test that needs one is only
   * declared when it is given (without `slow`, the abort test aborts before the call instead).
   */
  triggers?: {
    /** A chat body the backend refuses with this 4xx status, as the upstream would. */
    clientError?: { body: ContractTrigger; status: number };
    /** A chat body the backend fails on as with an upstream 5xx (a 502 UpstreamError or similar). */
    serverError?: ContractTrigger;
    /**
     * A chat body the backend only stops working on when the caller aborts (it waits on
     * `call.signal`: an upstream call, a long generation). The suite aborts the call once under
     * way and, for a module from loadModuleBackend, waits for the module itself to settle: one
     * that ignores its signal never does, and the test fails on vitest's timeout.
     */
    slow?: ContractTrigger;
  };
  /** Extra checks on every body, such as validation against the OpenAI spec. */
  validate?: Partial<ContractValidators>;
}

const DEFAULT_MODEL = 'contract-model';
const OUTPUT_TOKENS = 16;

/** What the gateway needs of a thrown error: a status and the OpenAI body to answer with. */
type GatewayErrorLike = Error & { status: number; toBody(): unknown };

function isGatewayErrorLike(error: unknown): error is GatewayErrorLike {
  return (
    error instanceof Error &&
    typeof (error as { status?: unknown }).status === 'number' &&
    typeof (error as { toBody?: unknown }).toBody === 'function'
  );
}

/** The OpenAI error body the client would get for a thrown error (an upstream's own, when relayed). */
function clientBody(error: Error & { toBody(): unknown }): Json {
  const upstream = (error as { upstreamBody?: unknown }).upstreamBody;
  if (upstream instanceof Uint8Array) return JSON.parse(Buffer.from(upstream).toString('utf8')) as Json;
  return error.toBody() as Json;
}

/**
 * What a call threw, from the call itself or from reading its answer; undefined when it answered
 * whole. The call is made at once, before anything the caller does next (an abort, say).
 */
async function failureOf(call: () => ReturnType<Backend['send']>): Promise<unknown> {
  try {
    await readText(await call());
    return undefined;
  } catch (thrown) {
    return thrown;
  }
}

/**
 * `error` with the gateway's log of the module during the test added to its message: the
 * containment turns a module's throw into a 502 whose message only points at the log.
 */
function withModuleLog(error: unknown, lines: readonly string[]): unknown {
  if (lines.length === 0 || !(error instanceof Error)) return error;
  error.message += `\n\nThe gateway's log of the module during this test:\n${lines.map((line) => `  ${line}`).join('\n')}`;
  return error;
}

/** `error` as the GatewayError a backend must throw (status, toBody), or the test fails here. */
function expectGatewayError(error: unknown, why: string): GatewayErrorLike {
  expect(isGatewayErrorLike(error), why).toBe(true);
  return error as GatewayErrorLike;
}

/**
 * The Backend contract: what the gateway relies on from an adapter, as vitest tests. Call it in
 * a test file (outside any `it`); it declares one `describe` block. For an endpoint the backend
 * does not serve (supports() false) its test checks the other half of the contract instead: a
 * call for it is refused with a 400 (EndpointNotSupportedError, or another invalid_request_error).
 * Nothing is skipped: a trigger not given leaves out the one test that needs it.
 *
 *   import { runBackendContract } from 'tollgate/testing';
 *   runBackendContract({ name: 'mine', make: () => createBackend('mine', {}, context) });
 */
export function runBackendContract(options: BackendContractOptions): void {
  const validate = options.validate ?? {};
  const model = (endpoint: JsonEndpoint) => options.models?.[endpoint] ?? options.model ?? DEFAULT_MODEL;

  describe(`Backend contract: ${options.name}`, () => {
    let backend: Backend | undefined;
    const subject = (): Backend => {
      if (!backend) throw new Error('the backend was not made (see the failure in beforeAll)');
      return backend;
    };
    /**
     * The backend, when it serves `endpoint`. When it does not, checks that it refuses a call
     * for it (`body`, a valid request there) with a 400, and gives undefined.
     */
    const serving = async (endpoint: JsonEndpoint, body: Json): Promise<Backend | undefined> => {
      const made = subject();
      if (made.supports(endpoint)) return made;
      const typed = expectGatewayError(
        await failureOf(() => made.send(contractCall(endpoint, model(endpoint), body))),
        `supports('${endpoint}') is false, so a call for it must reject with a GatewayError`,
      );
      expect(typed.status, `the refusal of ${endpoint} is the client's error`).toBe(400);
      expect(clientBody(typed)).toMatchObject({ error: { type: 'invalid_request_error' } });
      return undefined;
    };
    /** Triggers are chat bodies: a backend given one must serve chat. */
    const chatBackend = (): Backend => {
      const made = subject();
      expect(made.supports('chat.completions'), 'triggers are chat requests').toBe(true);
      return made;
    };
    const CHAT_BODY: Json = { max_tokens: OUTPUT_TOKENS, messages: [{ role: 'user', content: 'hello' }] };

    /** `it`, whose failure message also shows what the gateway logged of a module meanwhile. */
    const it = (title: string, test: () => Promise<void> | void) =>
      vitestIt(title, async () => {
        const log = backend && observationOf(backend)?.logged();
        const from = log?.length ?? 0;
        try {
          await test();
        } catch (error) {
          throw withModuleLog(error, log?.slice(from) ?? []);
        }
      });

    beforeAll(async () => {
      backend = await options.make();
    });
    afterAll(async () => {
      await backend?.close();
    });

    it('has a name and a type, and says for every endpoint whether it serves it', () => {
      const made = subject();
      expect(made.name).toBeTypeOf('string');
      expect(made.type).toBeTypeOf('string');
      for (const endpoint of Object.keys(ENDPOINT_PATHS) as Endpoint[]) {
        expect(made.supports(endpoint), `supports('${endpoint}')`).toBeTypeOf('boolean');
      }
    });

    it('answers chat as JSON (or refuses chat with a 400 when it does not serve it)', async () => {
      const made = await serving('chat.completions', CHAT_BODY);
      if (!made) return;
      const body = await readJson(
        await made.send(contractCall('chat.completions', model('chat.completions'), CHAT_BODY)),
      );
      expectChatCompletionShape(body);
      validate.chatCompletion?.(body);
      if (options.echoes)
        expect((body.choices as Json[])[0]).toMatchObject({ message: { content: 'hello' } });
    });

    it('streams chat as SSE ending in [DONE], with a usage chunk when asked', async () => {
      const made = await serving('chat.completions', CHAT_BODY);
      if (!made) return;
      const raw = await readSse(
        await made.send(
          contractCall('chat.completions', model('chat.completions'), {
            stream: true,
            stream_options: { include_usage: true },
            max_tokens: OUTPUT_TOKENS,
            messages: [{ role: 'user', content: 'abcdef' }],
          }),
        ),
      );
      expect(raw.endsWith('data: [DONE]\n\n'), 'the stream ends with data: [DONE]').toBe(true);
      const events = sseEvents(raw);
      expect(events.at(-1)?.data).toBe('[DONE]');
      const chunks = events.slice(0, -1).map((event) => JSON.parse(event.data) as Json);
      expect(chunks.length).toBeGreaterThan(0);
      for (const chunk of chunks) {
        expectChatChunkShape(chunk);
        validate.chatCompletionChunk?.(chunk);
      }
      const choices = chunks.flatMap((chunk) => chunk.choices as Json[]);
      expect(
        choices.some((choice) => typeof choice.finish_reason === 'string'),
        'a chunk carries the finish_reason',
      ).toBe(true);
      const last = chunks.at(-1) as Json;
      expect(last.choices, 'the usage chunk has no choices').toEqual([]);
      expectUsage(last.usage);
      if (options.echoes) {
        const text = choices.map((choice) => (choice.delta as Json | undefined)?.content ?? '').join('');
        expect(text).toBe('abcdef');
      }
    });

    it('answers legacy completions, JSON and streamed (or refuses them with a 400)', async () => {
      const made = await serving('completions', { prompt: 'p1', max_tokens: OUTPUT_TOKENS });
      if (!made) return;
      const json = await readJson(
        await made.send(
          contractCall('completions', model('completions'), { prompt: 'p1', max_tokens: OUTPUT_TOKENS }),
        ),
      );
      expectCompletionShape(json);
      validate.completion?.(json);
      const raw = await readSse(
        await made.send(
          contractCall('completions', model('completions'), {
            prompt: 'p1',
            max_tokens: OUTPUT_TOKENS,
            stream: true,
          }),
        ),
      );
      expect(raw.endsWith('data: [DONE]\n\n'), 'the stream ends with data: [DONE]').toBe(true);
      const chunks = sseEvents(raw)
        .slice(0, -1)
        .map((event) => JSON.parse(event.data) as Json);
      expect(chunks.length).toBeGreaterThan(0);
      for (const chunk of chunks) {
        expectCompletionChunkShape(chunk);
        validate.completionChunk?.(chunk);
      }
    });

    it('answers embeddings as floats and as base64, of one dimension (or refuses them with a 400)', async () => {
      const made = await serving('embeddings', { input: 'a' });
      if (!made) return;
      const floats = await readJson(
        await made.send(
          contractCall('embeddings', model('embeddings'), { input: ['a', 'b'], encoding_format: 'float' }),
        ),
      );
      validate.embeddingResponse?.(floats);
      const [first] = embeddingVectors(floats, 2);
      const base64 = await readJson(
        await made.send(
          contractCall('embeddings', model('embeddings'), { input: 'a', encoding_format: 'base64' }),
        ),
      );
      validate.embeddingResponse?.(base64);
      // A backend may answer floats to a base64 request: the gateway encodes them then.
      const [again] = embeddingVectors(base64, 1);
      expect(again).toHaveLength(first?.length ?? -1);
    });

    it('answers the Responses API, JSON and named-event streams without [DONE] (or refuses it with a 400)', async () => {
      const made = await serving('responses', { input: 'resp text', max_output_tokens: OUTPUT_TOKENS });
      if (!made) return;
      const json = await readJson(
        await made.send(
          contractCall('responses', model('responses'), {
            input: 'resp text',
            max_output_tokens: OUTPUT_TOKENS,
          }),
        ),
      );
      expectResponseShape(json);
      validate.response?.(json);
      if (options.echoes) expect(responseText(json)).toBe('resp text');
      const raw = await readSse(
        await made.send(
          contractCall('responses', model('responses'), {
            input: 'resp text',
            max_output_tokens: OUTPUT_TOKENS,
            stream: true,
          }),
        ),
      );
      expect(raw).not.toContain('[DONE]');
      const events = sseEvents(raw);
      expect(events[0]?.name).toBe('response.created');
      const payloads = events.map((event) => {
        const payload = JSON.parse(event.data) as Json;
        expect(payload.type, 'each event names itself in `event:` and in its type').toBe(event.name);
        validate.responseStreamEvent?.(payload);
        return payload;
      });
      const completed = payloads.at(-1) as Json;
      expect(completed.type).toBe('response.completed');
      expectResponseShape(completed.response as Json);
    });

    const { clientError, serverError, slow } = options.triggers ?? {};
    if (clientError)
      it('throws a refusal (4xx) as a GatewayError carrying an OpenAI error body', async () => {
        const made = chatBackend();
        const { body, status } = clientError;
        const typed = expectGatewayError(
          await failureOf(() => made.send(contractCall('chat.completions', model('chat.completions'), body))),
          'rejects with a GatewayError (status, toBody)',
        );
        expect(typed.status).toBe(status);
        expect(clientBody(typed)).toMatchObject({
          error: { message: expect.any(String), type: expect.any(String) },
        });
      });

    if (serverError)
      it('throws a failure (5xx) as a GatewayError with a 5xx status', async () => {
        const made = chatBackend();
        const { status } = expectGatewayError(
          await failureOf(() =>
            made.send(contractCall('chat.completions', model('chat.completions'), serverError)),
          ),
          'rejects with a GatewayError (status, toBody)',
        );
        expect(status).toBeGreaterThanOrEqual(500);
        expect(status).toBeLessThan(600);
      });

    it(
      slow
        ? 'stops when the caller aborts a call under way'
        : 'stops when the caller has aborted before the call (no slow trigger given)',
      async () => {
        const made = slow ? chatBackend() : subject();
        const endpoint: JsonEndpoint =
          slow || made.supports('chat.completions') ? 'chat.completions' : 'embeddings';
        const body = slow ?? (endpoint === 'embeddings' ? { input: 'a' } : CHAT_BODY);
        const controller = new AbortController();
        if (!slow) controller.abort();
        const call = contractCall(endpoint, model(endpoint), body, controller.signal);
        const pending = failureOf(() => made.send(call));
        controller.abort();
        // What the gateway expects: the client-gone error, or the platform's AbortError, from
        // the call or from reading its body.
        const error = await pending;
        expect(['ClientAbortedError', 'AbortError']).toContain((error as Error | undefined)?.name);
        // A module's containment gave that answer for it, whatever the module does: the module
        // itself must stop too. The slow trigger only ends on the abort, so a module that
        // ignores call.signal never settles here, and the test fails on vitest's timeout.
        await observationOf(made)?.settled(call);
      },
    );

    it('reports health and lists its models as strings', async () => {
      const made = subject();
      await expect(made.checkHealth(AbortSignal.timeout(10_000))).resolves.toBeUndefined();
      const ids = await made.listModels(AbortSignal.timeout(10_000));
      expect(Array.isArray(ids)).toBe(true);
      for (const id of ids) expect(id).toBeTypeOf('string');
    });
  });
}
