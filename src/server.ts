/*
 * `node dist/server.js [--config file]`: the gateway's entry. Only the Node version check is
 * imported statically; the server itself loads after it.
 */
import { assertSupportedNode } from './runtime/node-version.js';

assertSupportedNode('tollgate');
const { serveFromCommandLine } = await import('./serve.js');
await serveFromCommandLine(process.argv.slice(2));
