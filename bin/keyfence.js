#!/usr/bin/env node
// Entry point. Runs the CLI from a bundle that is compiled on the first run after a change (bin/bundle.js), or,
// when that cannot be built, from the TypeScript sources through tsx: never a build step to remember.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledCli } from './bundle.js';

// `keyfence findings | head`: a closed pipe ends the output, not the process with a stack trace.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

async function fromSources() {
  const { register } = await import('tsx/esm/api');
  register();
  return (await import('./cli.ts')).main;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const main = (await compiledCli(root)) ?? (await fromSources());
process.exitCode = await main(process.argv);
