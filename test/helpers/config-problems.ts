/**
 * What `parseConfig` says about a bad file, as the lines `l4lb check` prints; for the tables of bad
 * configurations. A file that is accepted fails the test.
 */
import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/index.js';

export function problemsOf(text: string, file = 'c.yaml'): string[] {
  try {
    parseConfig(text, file);
  } catch (error) {
    if (error instanceof ConfigError) {
      expect(error.code).toBe('LB_ERR_CONFIG');
      expect(error.message).toBe(error.lines().join('\n'));
      return error.lines();
    }
    throw error;
  }
  throw new Error('expected a ConfigError, but the file was accepted');
}
