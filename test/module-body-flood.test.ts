import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleBackend } from '../src/backends/module/module-backend-api.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A module whose body comes in millions of tiny pieces, each at once (a sync generator): the
 * gateway reads it without holding the event loop, so other requests are answered meanwhile,
 * and its limits (the JSON byte cap, timeoutMs) end it. Before, nothing else ran until the body
 * ended: no request, no timer (the timeouts never fired), and memory grew by a Buffer per piece.
 *
 * Told by events, not time: the flooding module counts the event loop's turns (an immediate
 * that re-queues itself) and gives up, ending its answer, once it has produced STARVED pieces
 * without one. With the gateway reading it fairly that never happens; without, the flood ends on
 * its own with a 200 before anything else was answered, and the tests below fail.
 */

const HOOKS = Symbol.for('tollgate.test.flood-scenarios');
type Scenario = () => ModuleBackend;
const scenarios = new Map<string, Scenario>();
(globalThis as Record<symbol, unknown>)[HOOKS] = scenarios;

let moduleFile: string;
beforeAll(() => {
  moduleFile = join(mkdtempSync(join(tmpdir(), 'tollgate-module-flood-')), 'scripted.mjs');
  writeFileSync(
    moduleFile,
    `const scenarios = globalThis[Symbol.for('tollgate.test.flood-scenarios')];
export default function createBackend(name, options) {
  return scenarios.get(options.scenario)();
}
`,
  );
});

let gateway: TestGateway | undefined;
let stopTicking: (() => void) | undefined;
afterEach(async () => {
  stopTicking?.();
  await gateway?.close();
  gateway = undefined;
});

const STARVED = 100_000;
const MIB = Buffer.alloc(1024 * 1024, 'x');

interface Flood {
  /** Resolves once the module has yielded its first thousand pieces. */
  flooding: Promise<void>;
  /** From now on the module yields 1 MiB pieces (the same buffer), to reach the byte cap. */
  grow(): void;
  readonly starved: boolean;
}

/** A module answering JSON as `{"a":"xxxx...` one byte a piece, endlessly while the loop turns. */
function floodingModule(): { flood: Flood; scenario: Scenario } {
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  stopTicking = () => {
    ticking = false;
  };
  let started!: () => void;
  const flooding = new Promise<void>((resolve) => {
    started = resolve;
  });
  let growing = false;
  let starved = false;
  function* body(): Generator<string | Buffer> {
    yield '{"a":"';
    let pieces = 0;
    let seen = turns;
    let withoutTurn = 0;
    for (;;) {
      yield growing ? MIB : 'x';
      if (++pieces === 1000) started();
      if (turns !== seen) {
        seen = turns;
        withoutTurn = 0;
      } else if (++withoutTurn >= STARVED) {
        starved = true;
        yield '"}';
        return;
      }
    }
  }
  return {
    flood: {
      flooding,
      grow: () => {
        growing = true;
      },
      get starved() {
        return starved;
      },
    },
    scenario: () => ({
      supports: () => true,
      send: () => ({ status: 200, contentType: 'application/json', body: body() }),
    }),
  };
}

async function gatewayWith(scenario: Scenario, backend: Record<string, unknown> = {}): Promise<TestGateway> {
  const id = `s${scenarios.size}`;
  scenarios.set(id, scenario);
  gateway = await startGateway({
    backends: { flood: { type: 'module', module: moduleFile, options: { scenario: id }, ...backend } },
    models: { flood: { backend: 'flood', retry: { attempts: 1 }, circuit: { enabled: false } } },
  });
  return gateway;
}

interface Settled {
  status: number;
  json: unknown;
}

function chat(target: TestGateway): { answer: Promise<Settled>; isSettled: () => boolean } {
  let settled = false;
  const answer = fetch(`${target.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'flood', messages: [{ role: 'user', content: 'hi' }] }),
  }).then(async (response) => {
    const text = await response.text();
    settled = true;
    return { status: response.status, json: JSON.parse(text) as unknown };
  });
  return { answer, isSettled: () => settled };
}

describe('a module answering JSON in millions of tiny pieces', () => {
  it('leaves the gateway answering other requests meanwhile, and ends at the JSON byte cap with a 502', async () => {
    const { flood, scenario } = floodingModule();
    const target = await gatewayWith(scenario);
    const flooded = chat(target);
    await flood.flooding;

    const health = await fetch(`${target.url}/healthz`);
    expect(health.status).toBe(200);
    expect(flooded.isSettled(), 'the flood was still being read when /healthz answered').toBe(false);

    // Big pieces now: the cap (256 MiB) comes after a few hundred of them, the same buffer each.
    flood.grow();
    const { status, json } = await flooded.answer;
    expect(flood.starved).toBe(false);
    expect(status).toBe(502);
    const error = expectEnvelope(json, { type: 'server_error', code: 'upstream_error', param: null });
    expect(error.message).toMatch(
      /^Backend 'flood' gave a malformed answer: a JSON answer larger than \d+ bytes/,
    );
  });

  it('is cut at timeoutMs with a 504: a JSON answer is its first byte, all of it', async () => {
    const { flood, scenario } = floodingModule();
    const target = await gatewayWith(scenario, { timeoutMs: 200 });
    const { status, json } = await chat(target).answer;
    expect(flood.starved).toBe(false);
    expect(status).toBe(504);
    const error = expectEnvelope(json, { type: 'server_error', code: 'upstream_timeout', param: null });
    expect(error.message).toBe("Backend 'flood' did not finish its answer in time.");
  });
});
