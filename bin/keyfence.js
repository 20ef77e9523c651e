#!/usr/bin/env node
// Entry point: loads the TypeScript CLI through tsx, so there is no build step between a change and a run.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv);
