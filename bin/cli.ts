// commander wiring only: each command module registers its commands and hands typed options to a handler.
import { Command, CommanderError } from 'commander';
import { EXIT } from '../model/errors.ts';
import { registerIngest } from './commands/ingest.ts';
import { registerAnalyze } from './commands/analyze.ts';
import { registerRecommend } from './commands/recommend.ts';
import { registerInvestigate } from './commands/investigate.ts';
import { registerReview } from './commands/review.ts';
import { registerDemo } from './commands/demo.ts';

export function buildProgram(): Command {
  const program = new Command('keyfence')
    .description('Mine ActionTrail audit events and propose minimal, evidence-backed network ACLs for AccessKeys (never applied automatically)')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerIngest(program);
  registerAnalyze(program);
  registerRecommend(program);
  registerInvestigate(program);
  registerReview(program);
  registerDemo(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; everything else is a usage error.
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    throw e;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
}
