/**
 * `npm run schema`: prints the configuration's JSON Schema (src/config/json-schema.ts), which the
 * script writes to docs/l4lb.schema.json; test/config-schema.test.ts checks the two agree.
 */
import { configJsonSchema } from './config/index.js';

process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
