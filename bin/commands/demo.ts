import type { Command } from 'commander';

export function registerDemo(_program: Command): void {
  // commands are registered here by the module that owns them
}
