#!/usr/bin/env node
// Runs src/cli/quorumkv.ts from its build, made first if the sources changed (run-cli.js).
import { runCli } from './run-cli.js';

await runCli('quorumkv');
