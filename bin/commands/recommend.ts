import type { Command } from 'commander';

export function registerRecommend(_program: Command): void {
  // commands are registered here by the module that owns them
}
