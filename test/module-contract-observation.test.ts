import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * `tollgate/testing` as a module's author runs it: vitest in the author's own folder, the
 * package installed there, the contract suite on the author's module. The suite sees the module
 * itself behind the containment: its abort test waits for the module's own call to settle (one
 * that ignores call.signal never does, and the test fails on vitest's timeout: before, the
 * containment answered the abort for it and the test passed), and a failing test shows what the
 * gateway logged of the module meanwhile (before, only "the gateway's log has the details" of a
 * logger the suite kept silent).
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VITEST = join(ROOT, 'node_modules/vitest/vitest.mjs');

/** A chat module echoing the last user message; `wait` (the slow trigger) waits as `waiting` says. */
function echoModule(waiting: string): string {
  return `import { encodeDone, encodeEvent, InvalidRequestError } from 'tollgate';
export default function createBackend() {
  return {
    supports: (endpoint) => endpoint === 'chat.completions',
    async send({ endpoint, model, body, stream, signal }) {
      if (endpoint !== 'chat.completions') throw new InvalidRequestError('Chat completions only.');
      const text = body.messages.at(-1).content;
      if (text === 'wait') ${waiting};
      const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
      const base = { id: 'chatcmpl-1', created: 1, model };
      if (stream) return { status: 200, contentType: 'text/event-stream', body: [
        encodeEvent({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: text }, finish_reason: null }] }),
        encodeEvent({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
        encodeEvent({ ...base, object: 'chat.completion.chunk', choices: [], usage }),
        encodeDone(),
      ] };
      return { status: 200, contentType: 'application/json', body: JSON.stringify({ ...base, object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage }) };
    },
  };
}
`;
}

const MODULES: Record<string, string> = {
  // Waits for something that never comes, ignoring call.signal.
  'ignores.mjs': echoModule('await new Promise(() => {})'),
  'honours.mjs': echoModule(
    "await new Promise((resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))",
  ),
  // A first attempt: a plain Error where a GatewayError belongs.
  'sloppy.mjs': `export default function createBackend() {
  return {
    supports: (endpoint) => endpoint === 'chat.completions',
    async send() {
      throw new Error('this model needs a system message');
    },
  };
}
`,
};

function suiteOn(module: string): string {
  return `import { loadModuleBackend, runBackendContract } from 'tollgate/testing';
runBackendContract({
  name: ${JSON.stringify(module)},
  make: () => loadModuleBackend(new URL('./${module}', import.meta.url).href),
  echoes: true,
  triggers: { slow: { messages: [{ role: 'user', content: 'wait' }] } },
});
`;
}

interface AssertionResult {
  title: string;
  status: string;
  failureMessages: string[];
}

/** Each test's result, by the file it is in (`ignores`, ...) and its title. */
let results: Map<string, AssertionResult[]>;

beforeAll(async () => {
  const author = mkdtempSync(join(tmpdir(), 'tollgate-module-author-'));
  mkdirSync(join(author, 'node_modules'));
  symlinkSync(ROOT, join(author, 'node_modules/tollgate'));
  writeFileSync(
    join(author, 'package.json'),
    '{ "name": "my-backend", "type": "module", "private": true }\n',
  );
  for (const [file, text] of Object.entries(MODULES)) {
    writeFileSync(join(author, file), text);
    writeFileSync(join(author, file.replace('.mjs', '.test.mjs')), suiteOn(file));
  }
  // The author's vitest, not this one's: none of its settings or workers.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST')));
  const report = join(author, 'report.json');
  await new Promise<void>((resolve) => {
    execFile(
      process.execPath,
      [VITEST, 'run', '--testTimeout', '2000', '--reporter', 'json', '--outputFile', report],
      { cwd: author, env: { ...env, NODE_ENV: 'test' } },
      // Failing tests are what several of these are for: vitest's exit status says nothing here.
      () => resolve(),
    );
  });
  const parsed = JSON.parse(readFileSync(report, 'utf8')) as {
    testResults: Array<{ name: string; assertionResults: AssertionResult[] }>;
  };
  results = new Map(
    parsed.testResults.map((file) => [
      file.name.slice(file.name.lastIndexOf('/') + 1).replace('.test.mjs', ''),
      file.assertionResults,
    ]),
  );
}, 120_000);

function result(file: string, title: RegExp): AssertionResult {
  const found = results.get(file)?.find((test) => title.test(test.title));
  if (!found) throw new Error(`no test matching ${title} in ${file}: ${JSON.stringify([...results.keys()])}`);
  return found;
}

const ABORT_TEST = /^stops when the caller aborts a call under way/;

describe('the contract suite, run by a module’s author', () => {
  it('fails a module that ignores call.signal: its call never settles', () => {
    const aborted = result('ignores', ABORT_TEST);
    expect(aborted.status).toBe('failed');
    expect(aborted.failureMessages.join('\n')).toMatch(/timed out in 2000ms/);
    // Everything else it does is fine.
    const others = results.get('ignores')?.filter((test) => test !== aborted) ?? [];
    expect(others.length).toBeGreaterThan(0);
    for (const test of others) expect(test.status, test.title).toBe('passed');
  });

  it('passes a module that stops when call.signal aborts', () => {
    const all = results.get('honours') ?? [];
    expect(all.length).toBeGreaterThan(0);
    for (const test of all)
      expect(test.status, `${test.title}: ${test.failureMessages.join('\n')}`).toBe('passed');
  });

  it('shows why a call got a 502: the module’s error and where it was thrown, from the gateway’s log', () => {
    const chat = result('sloppy', /^answers chat as JSON/);
    expect(chat.status).toBe('failed');
    const message = chat.failureMessages.join('\n');
    expect(message).toContain("Backend 'module-under-test' failed: its module threw an error");
    expect(message).toContain("The gateway's log of the module during this test:");
    expect(message).toMatch(
      /\[error\] backend module failed \(send chat\.completions\): Error: this model needs a system message/,
    );
    expect(message).toMatch(/at Object\.send \(.*\/sloppy\.mjs:5:13\)/);
  });
});
