import type { Command } from 'commander';

export function registerIngest(_program: Command): void {
  // commands are registered here by the module that owns them
}
