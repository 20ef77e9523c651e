import type { Command } from 'commander';

export function registerAnalyze(_program: Command): void {
  // commands are registered here by the module that owns them
}
