import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // DuckDB is a native module: separate processes keep one test file's database handles from another's.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // 2 cores: more parallel files only contend.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
