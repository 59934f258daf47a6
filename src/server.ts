/*
 * `node dist/server.js [--config file]`: the gateway's entry. Only the Node version check and
 * the nextTick shape keeper are imported statically; the server itself loads after them.
 */
import { assertSupportedNode } from './runtime/node-version.js';
import { keepTickObjectShape } from './runtime/tick-object-shape.js';

assertSupportedNode('tollgate');
// Before the server's modules load: a full GC during boot would otherwise leave nextTick slow.
keepTickObjectShape();
const { serveFromCommandLine } = await import('./serve.js');
await serveFromCommandLine(process.argv.slice(2));
