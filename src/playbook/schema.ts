/**
 * The raw playbook file as zod sees it. A task's module key is any key that is not a task key,
 * so the task schema has a catch-all; the loader checks "exactly one module key".
 */
import { z } from 'zod';

const stringList = z.union([z.string().min(1), z.array(z.string().min(1))]);
/** `when: eq a "b"`, `when: false`, or a list (all must hold). */
const condition = z.union([z.string().min(1), z.boolean(), z.array(z.union([z.string().min(1), z.boolean()])).min(1)]);
const vars = z.record(z.string(), z.unknown());
const varName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name (letters, digits, "_", not starting with a digit)');

/** Keys a task may have besides its one module key. */
export const TASK_KEYS = [
  'name', 'when', 'tags', 'notify', 'register', 'ignore_errors', 'retries', 'delay', 'until',
  'changed_when', 'failed_when', 'become', 'vars', 'listen',
] as const;

export const taskSchema = z
  .object({
    name: z.string().min(1).optional(),
    when: condition.optional(),
    tags: stringList.optional(),
    notify: stringList.optional(),
    register: varName.optional(),
    ignore_errors: z.boolean().optional(),
    retries: z.number().int().min(0).optional(),
    delay: z.number().min(0).optional(),
    until: condition.optional(),
    changed_when: condition.optional(),
    failed_when: condition.optional(),
    become: z.boolean().optional(),
    vars: vars.optional(),
    listen: stringList.optional(),
  })
  .catchall(z.unknown());

export const importTasksSchema = z.strictObject({
  name: z.string().optional(),
  import_tasks: z.string().min(1),
  when: condition.optional(),
  tags: stringList.optional(),
  vars: vars.optional(),
});

const serialItem = z.union([z.number().int().positive(), z.string().regex(/^\d+%$/, 'must be a number or a percentage like "50%"')]);

export const playSchema = z.strictObject({
  name: z.string().min(1).optional(),
  hosts: z.string().min(1),
  serial: z.union([serialItem, z.array(serialItem).min(1)]).optional(),
  vars: vars.default({}),
  tasks: z.array(z.unknown()).default([]),
  handlers: z.array(z.unknown()).default([]),
  any_errors_fatal: z.boolean().default(false),
  max_fail_percentage: z.number().min(0).max(100).optional(),
  gather_facts: z.boolean().default(true),
  become: z.boolean().optional(),
  tags: stringList.optional(),
});

export const importPlaybookSchema = z.strictObject({ import_playbook: z.string().min(1) });

/** The whole playbook file: a list of plays or `- import_playbook: FILE`. */
export const playbookSchema = z.array(z.union([importPlaybookSchema, playSchema]));

export type RawTask = z.infer<typeof taskSchema>;
export type RawPlay = z.infer<typeof playSchema>;
export type RawCondition = z.infer<typeof condition>;
