/**
 * docs/l4lb.schema.json is what the configuration schema emits now (zod 4's z.toJSONSchema): a
 * change to the schema without `npm run schema` fails here, so editors never validate against a
 * stale schema.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../src/config/index.js';

const COMMITTED = new URL('../docs/l4lb.schema.json', import.meta.url);

describe('the published JSON Schema', () => {
  it('docs/l4lb.schema.json equals what the schema emits (run `npm run schema` after changing it)', () => {
    expect(readFileSync(COMMITTED, 'utf8')).toBe(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

  it('describes the file as written: mode may be left out of a proxy service, listen may be a port or a list and is optional there (the rules require it)', () => {
    const schema = configJsonSchema() as { properties: { services: { items: { oneOf: { required: string[]; properties: Record<string, { anyOf?: unknown[] }> }[] } } } };
    const [proxy, dsr] = schema.properties.services.items.oneOf;
    // listen is optional in the schema: rules.ts requires it of every service no listeners route names.
    expect(proxy.required).toEqual(['name', 'backends']);
    expect(dsr.required).toContain('mode');
    expect(proxy.properties.listen.anyOf).toContainEqual({ type: 'integer', minimum: 0, maximum: 65535 });
    expect(proxy.properties.listen.anyOf).toContainEqual(expect.objectContaining({ type: 'array', minItems: 1 }));
    expect(Object.keys(proxy.properties)).toEqual(expect.arrayContaining(['balance', 'hashKey', 'flowHash', 'healthCheck', 'backends', 'proxyProtocol', 'limits']));
  });
});
