/**
 * The published JSON Schemas: regenerated from the zod schemas and compared with the committed
 * schema/*.json (so they never drift), then used by a real JSON Schema validator (ajv) on the
 * shipped inventories and playbooks and on bad inputs from the inventory problem catalogue.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { jsonSchemas } from '../../src/cli/schema.js';

const root = join(import.meta.dirname, '..', '..');
const committed = (name: string) => JSON.parse(readFileSync(join(root, 'schema', name), 'utf8')) as object;
const yamlFile = (p: string) => parse(readFileSync(join(root, p), 'utf8')) as unknown;

function validator(name: string) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true, formats: { uri: true } });
  return ajv.compile(committed(name));
}

describe('generated JSON Schemas', () => {
  it('match the committed schema/*.json (run `npm run schema` after changing a zod schema)', () => {
    const generated = jsonSchemas();
    expect(Object.keys(generated).sort()).toEqual(readdirSync(join(root, 'schema')).filter((f) => f.endsWith('.json')).sort());
    for (const [name, doc] of Object.entries(generated)) expect(committed(name), name).toEqual(JSON.parse(JSON.stringify(doc)));
  });

  it('accept the shipped example inventories', () => {
    const v = validator('inventory.schema.json');
    for (const p of ['inventory/example.yaml', 'test/fixtures/inputs/inventory/full.yaml']) {
      expect(v(yamlFile(p)), `${p}: ${JSON.stringify(v.errors)}`).toBe(true);
    }
  });

  it('accept the shipped playbooks', () => {
    const v = validator('playbook.schema.json');
    for (const f of readdirSync(join(root, 'playbooks'))) {
      expect(v(yamlFile(join('playbooks', f))), `${f}: ${JSON.stringify(v.errors)}`).toBe(true);
    }
  });

  // Shape errors from test/unit/inventory.test.ts's catalogue (semantic rules such as the priority
  // rule need rha validate; a JSON Schema only sees shapes).
  const bad: Array<[string, string, string]> = [
    ['misspelt top-level key', 'hosts: { a: 10.0.0.1 }\nclsuters: {}\n', 'additionalProperties'],
    ['misspelt host key', 'hosts:\n  a:\n    address: 10.0.0.1\n    pasword: x\n', 'additionalProperties'],
    ['wrong type', 'ssh:\n  port: "22"\nhosts: { a: 10.0.0.1 }\n', 'type'],
    ['port out of range', 'ssh:\n  port: 70000\nhosts: { a: 10.0.0.1 }\n', 'maximum'],
    ['host neither string nor mapping', 'hosts:\n  a: 5\n', 'type'],
    ['missing hosts', 'vars: {}\n', 'required'],
    ['secret of the wrong shape', 'hosts:\n  a:\n    address: 10.0.0.1\n    password: { evn: X }\n', 'additionalProperties'],
    ['vrid range', 'hosts: { a: 10.0.0.1, b: 10.0.0.2 }\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: { password: pw }\n    keepalived: { virtual_router_id: 256 }\n', 'maximum'],
    ['missing password', 'hosts: { a: 10.0.0.1, b: 10.0.0.2 }\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: {}\n    keepalived: { virtual_router_id: 51 }\n', 'required'],
    ['enum typo', 'hosts: { a: 10.0.0.1, b: 10.0.0.2 }\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: { password: pw, appendfsync: everysecond }\n    keepalived: { virtual_router_id: 51 }\n', 'enum'],
    ['misspelt keepalived key', 'hosts: { a: 10.0.0.1, b: 10.0.0.2 }\nclusters:\n  c:\n    master: a\n    replica: b\n    vip: 10.0.0.100/24\n    redis: { password: pw }\n    keepalived: { virtual_router_id: 51, advert_interval: 2 }\n', 'additionalProperties'],
  ];
  it.each(bad)('reject a bad inventory: %s', (_name, text, keyword) => {
    const v = validator('inventory.schema.json');
    expect(v(parse(text))).toBe(false);
    expect(v.errors!.map((e) => e.keyword)).toContain(keyword);
  });

  it('reject a misspelt play key and a play without hosts', () => {
    const v = validator('playbook.schema.json');
    expect(v(parse('- hosts: all\n  taks: []\n'))).toBe(false);
    expect(v(parse('- name: x\n  tasks: []\n'))).toBe(false);
  });

  it('is referenced by the shipped example inventory as editors expect', () => {
    expect(readFileSync(join(root, 'inventory/example.yaml'), 'utf8')).toMatch(/^# yaml-language-server: \$schema=\.\.\/schema\/inventory\.schema\.json$/m);
  });
});
