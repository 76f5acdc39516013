#!/usr/bin/env node
// Runs src/cli/qkv.ts from its build, made first if the sources changed (run-cli.js).
import { runCli } from './run-cli.js';

await runCli('qkv');
