#!/usr/bin/env node
/*
 * The `tollgate` command. Only the Node version check and the nextTick shape keeper are imported
 * statically; the CLI itself loads after them, so an old Node gets a sentence instead of a crash
 * inside a dependency.
 */
import { assertSupportedNode } from '../runtime/node-version.js';
import { keepTickObjectShape } from '../runtime/tick-object-shape.js';

assertSupportedNode('tollgate');
// `tollgate serve` is the gateway too: see src/server.ts.
keepTickObjectShape();
await import('./program.js');
