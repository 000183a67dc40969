/** What an LbError thrown by `work` says, as `CODE: message`; any other throw, or none, fails the test. */
import { isLbError } from '../../src/errors.js';

export function errorOf(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    if (isLbError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  throw new Error('expected an LbError');
}
