import { describe, expect, it } from 'vitest';
import { parseNightlyConfig } from '../review/config.ts';
import { InvalidInputError } from '../model/errors.ts';

function errorOf(value: unknown): InvalidInputError {
  try {
    parseNightlyConfig(value, '/etc/keyfence/keyfence.config.json');
  } catch (e) {
    return e as InvalidInputError;
  }
  throw new Error('expected the config to be rejected');
}

describe('nightly configuration', () => {
  it('fills defaults and resolves paths relative to the config file', () => {
    const config = parseNightlyConfig({ sources: { files: ['trail/'] } }, '/etc/keyfence/keyfence.config.json');
    expect(config.db).toBe('/etc/keyfence/keyfence.duckdb');
    expect(config.sources.files).toEqual(['/etc/keyfence/trail']);
    expect(config.window).toBe('30d');
  });

  it('names the exact field of a wrong value', () => {
    const e = errorOf({ sources: { kafka: { brokers: [''], topic: 't', group: 'g' } } });
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.context.path).toBe('sources.kafka.brokers[0]');
  });

  it('names an unknown field instead of ignoring it', () => {
    const e = errorOf({ recommend: { minDayz: 3 } });
    expect(e.message).toContain('recommend');
    expect(e.message).toMatch(/minDayz/);
  });

  it('rejects a duration it cannot read', () => {
    expect(errorOf({ keep: 'ninety days' }).context.path).toBe('keep');
  });
});
