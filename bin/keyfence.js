#!/usr/bin/env node
// Entry point: loads the TypeScript CLI through tsx, so there is no build step between a change and a run.
import { register } from 'tsx/esm/api';

// `keyfence findings | head`: a closed pipe ends the output, not the process with a stack trace.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
register();
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv);
