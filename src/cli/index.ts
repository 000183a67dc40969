/**
 * The command line: the command tree (program.ts) and what every command shares (common.ts).
 */
export { buildProgram, PROGRAM_DESCRIPTION } from './program.js';
export { EXIT_FAILURE, EXIT_USAGE } from './common.js';
