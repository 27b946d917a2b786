/**
 * The published JSON Schemas (schema/*.schema.json) for editors: generated from the very zod
 * schemas the loaders use, so the two never drift (test/unit/schema.test.ts regenerates them and
 * compares with the committed files). `npm run schema` rewrites them after a schema change.
 *
 * Editors pick them up from a first-line comment in the YAML file:
 *   # yaml-language-server: $schema=../schema/inventory.schema.json
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { inventorySchema } from '../inventory/schema.js';
import { importTasksSchema, playbookSchema, playSchema, taskSchema, importPlaybookSchema } from '../playbook/schema.js';

/** File name → JSON Schema document. */
export function jsonSchemas(): Record<string, object> {
  // The loader takes tasks as `unknown` (it reports "exactly one module key" itself, with lines);
  // for editors a task is spelled out, so completion offers when/register/notify...
  const task = z.union([importTasksSchema, taskSchema]);
  const editorPlaybook = z.array(
    z.union([importPlaybookSchema, playSchema.extend({ tasks: z.array(task).optional(), handlers: z.array(taskSchema).optional() })]),
  );
  void playbookSchema; // the loader's own schema; editorPlaybook is it with tasks spelled out
  return {
    'inventory.schema.json': document(inventorySchema, 'rha inventory', 'Hosts, groups and HA Redis pairs for rha (native format). See docs/design.md#inventory-format-native.'),
    'playbook.schema.json': document(editorPlaybook, 'rha playbook', 'A list of plays (Ansible-shaped) for `rha run`. See README.md#playbooks.'),
  };
}

function document(schema: z.ZodType, title: string, description: string): object {
  // io: 'input': keys with defaults are optional to write (what a user edits is the input side).
  const js = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    reused: 'inline',
    // zod marks startsWith as format "starts_with" next to the equivalent pattern; editors would
    // warn about an unknown format, and the pattern already says it.
    override: (ctx) => {
      if (ctx.jsonSchema.format === 'starts_with') delete ctx.jsonSchema.format;
    },
  }) as Record<string, unknown>;
  const { $schema, ...rest } = js;
  return { $schema, title, description, ...rest };
}

/** Writes every schema into `dir`; returns the paths written. */
export function writeSchemas(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(jsonSchemas()).map(([name, doc]) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    return file;
  });
}

// `node dist/cli/schema.js [DIR]` (npm run schema): regenerate the committed schemas.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? join(fileURLToPath(new URL('../../', import.meta.url)), 'schema');
  for (const f of writeSchemas(dir)) process.stdout.write(`wrote ${f}\n`);
}
