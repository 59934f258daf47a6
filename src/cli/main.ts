#!/usr/bin/env node
/*
 * The `tollgate` command. Only the Node version check is imported statically; the CLI itself
 * loads after it, so an old Node gets a sentence instead of a crash inside a dependency.
 */
import { assertSupportedNode } from '../runtime/node-version.js';

assertSupportedNode('tollgate');
await import('./program.js');
