import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, formatProblem, type Inventory, type Module } from '../../src/core/types.js';
import { parseInventory } from '../../src/inventory/index.js';
import { forgetLoadedPlaybooks, isStored, loadPlaybook, playbookSchema, validatePlaybook, type PlaybookStore, type StoredPlaybook } from '../../src/playbook/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '..', 'fixtures', 'inputs', 'playbooks');

/** Fake modules: only their names and argument schemas matter to validation. */
function fake(name: string, args: z.ZodType): Module {
  return { name, args, plan: async () => ({ changes: [] }), apply: async () => ({ changed: false, failed: false, msg: '' }) };
}
const registry: ReadonlyMap<string, Module> = new Map(
  [
    fake('command', z.union([z.array(z.string()).min(1), z.strictObject({ cmd: z.string() })])),
    fake('file', z.strictObject({ path: z.string(), state: z.enum(['directory', 'file', 'absent']), mode: z.string().optional() })),
    fake('copy', z.strictObject({ content: z.string(), dest: z.string() })),
    fake('template', z.strictObject({ src: z.string(), dest: z.string(), mode: z.string().optional() })),
    fake('wait_for', z.strictObject({ port: z.number().int(), timeout: z.number().optional() })),
  ].map((m) => [m.name, m]),
);

const inv: Inventory = parseInventory(
  'inventory.yaml',
  `hosts:
  a: 10.0.0.11
  b: 10.0.0.12
  w: 10.0.0.20
groups:
  web: { hosts: [w], vars: { site: x } }
vars: { env_name: prod }
clusters:
  cache:
    master: a
    replica: b
    vip: 10.0.0.100/24
    redis: { password: pw }
    keepalived: { virtual_router_id: 51 }
`,
  { env: {} },
);

describe('loadPlaybook: imports and defaults', () => {
  it('resolves import_playbook and nested import_tasks, inheriting when/tags/vars', async () => {
    const pb = await loadPlaybook(join(fixtures, 'site.yaml'));
    expect(pb.dir).toBe(fixtures);
    expect(pb.plays.map((p) => p.name)).toEqual(['redis', 'ping everything']);
    const [redis, ping] = pb.plays;
    expect(redis.file).toBe(join(fixtures, 'redis.yaml'));
    expect(redis.serial).toEqual([1, '50%']);
    expect(redis.gatherFacts).toBe(true);
    expect(ping.gatherFacts).toBe(false);
    expect(redis.tasks.map((t) => [t.name, t.module, t.file.slice(fixtures.length + 1), t.line])).toEqual([
      ['data folder', 'file', 'tasks/common.yaml', 1],
      ['marker file', 'copy', 'tasks/more.yaml', 1],
      ['render redis.conf', 'template', 'redis.yaml', 12],
      ['wait', 'command', 'redis.yaml', 19],
    ]);
    const [data, marker, conf, wait] = redis.tasks;
    expect(data).toMatchObject({ when: 'eq node.role "master"', tags: ['setup', 'data'], vars: { marker: 'imported' }, retries: 0, delaySeconds: 0, ignoreErrors: false });
    expect(marker.args).toEqual({ content: '{{marker}}', dest: '/tmp/marker' });
    expect(conf).toMatchObject({ notify: ['restart redis'], register: 'conf', when: undefined, tags: [] });
    expect(wait).toMatchObject({ until: 'eq ping.stdout "PONG"', retries: 3, delaySeconds: 5, changedWhen: 'false', when: 'and conf.changed (eq node.role "replica")' });
    expect(redis.handlers[0]).toMatchObject({ name: 'restart redis server', listen: ['restart redis'] });
    expect(ping.tasks[0]).toMatchObject({ name: 'command', args: ['/bin/true'] });
    expect(ping).toMatchObject({ name: 'ping everything', hosts: 'all', serial: [], anyErrorsFatal: false, tags: [] });
  });

  it('parses a playbook once per process, and again once any file it imports changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rha-pbmemo-'));
    try {
      writeFileSync(join(dir, 'site.yaml'), '- hosts: all\n  tasks:\n    - import_tasks: t.yaml\n');
      writeFileSync(join(dir, 't.yaml'), '- name: one\n  command: [/bin/true]\n');
      const first = await loadPlaybook(join(dir, 'site.yaml'));
      expect(await loadPlaybook(join(dir, 'site.yaml'))).toBe(first);
      // Same length, other text: an edit of the imported file is seen.
      writeFileSync(join(dir, 't.yaml'), '- name: two\n  command: [/bin/true]\n');
      const second = await loadPlaybook(join(dir, 'site.yaml'));
      expect(second).not.toBe(first);
      expect(second.plays[0].tasks.map((t) => t.name)).toEqual(['two']);
      // A file that turns invalid is reported, not served from memory.
      writeFileSync(join(dir, 't.yaml'), '- name: two\n  nosuchmodule: 1\n  command: [/bin/true]\n');
      await expect(loadPlaybook(join(dir, 'site.yaml'))).rejects.toThrow(InputError);
      rmSync(join(dir, 't.yaml'));
      await expect(loadPlaybook(join(dir, 'site.yaml'))).rejects.toThrow(InputError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stored playbook is used only while every file it came from has the same text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rha-pbstore-'));
    const entries = new Map<string, StoredPlaybook>();
    const store: PlaybookStore = { get: (f) => entries.get(f), set: (f, e) => void entries.set(f, JSON.parse(JSON.stringify(e))) };
    const site = join(dir, 'site.yaml');
    try {
      writeFileSync(site, '- hosts: all\n  tasks:\n    - import_tasks: t.yaml\n');
      writeFileSync(join(dir, 't.yaml'), '- name: one\n  command: [/bin/true]\n  when: eq a "b"\n');
      const parsed = await loadPlaybook(site, { store });
      expect(isStored(parsed)).toBe(false);
      expect(Object.keys(entries.get(site)!.files).sort()).toEqual([site, join(dir, 't.yaml')]);
      // Another process: nothing in memory, the store's copy is the same playbook.
      forgetLoadedPlaybooks();
      const stored = await loadPlaybook(site, { store });
      expect(isStored(stored)).toBe(true);
      expect(stored).toEqual(parsed);
      // An imported file edited: parsed again, and stored again.
      writeFileSync(join(dir, 't.yaml'), '- name: two\n  command: [/bin/true]\n');
      forgetLoadedPlaybooks();
      const edited = await loadPlaybook(site, { store });
      expect(isStored(edited)).toBe(false);
      expect(edited.plays[0].tasks[0]).toMatchObject({ name: 'two', when: undefined });
      // A file gone: the store's entry is not used, the load reports it.
      forgetLoadedPlaybooks();
      rmSync(join(dir, 't.yaml'));
      await expect(loadPlaybook(site, { store })).rejects.toThrow(InputError);
      // `fresh` parses whatever is kept.
      writeFileSync(join(dir, 't.yaml'), '- name: two\n  command: [/bin/true]\n');
      forgetLoadedPlaybooks();
      expect(isStored(await loadPlaybook(site, { store }))).toBe(true);
      expect(isStored(await loadPlaybook(site, { store, fresh: true }))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['cycle/a.yaml', /cycle\/b\.yaml:1 0\.import_playbook: import cycle a\.yaml → b\.yaml → a\.yaml: a file cannot import itself/],
    ['cycle/tasks.yaml', /cycle\/t1\.yaml:1 0\.import_tasks: import cycle t1\.yaml → t1\.yaml: a file cannot import itself/],
  ])('reports the import cycle in %s', async (file, message) => {
    await expect(loadPlaybook(join(fixtures, file))).rejects.toThrow(message);
  });

  it('exports the raw schema', () => {
    expect(playbookSchema.safeParse([{ hosts: 'all', tasks: [] }]).success).toBe(true);
  });
});

describe('playbook problems: one row per bad input, message pinned', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rha-pb-'));
    mkdirSync(join(dir, 'templates'));
    writeFileSync(join(dir, 'templates', 'ok.hbs'), 'port {{cluster.redis.port}}\n');
    writeFileSync(join(dir, 'templates', 'bad.hbs'), 'port {{cluster.redis.port}}\nbind {{bind_addres}}\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Loads and validates a playbook text; returns every problem printed, relative to the temp dir. */
  async function problemsOf(text: string): Promise<string[]> {
    const file = join(dir, 'pb.yaml');
    writeFileSync(file, text);
    try {
      const pb = await loadPlaybook(file);
      return validatePlaybook(pb, inv, registry).map((p) => formatProblem(p).split(dir + '/').join(''));
    } catch (e) {
      if (e instanceof InputError) return e.problems.map((p) => formatProblem(p).split(dir + '/').join(''));
      throw e;
    }
  }
  const play = (tasks: string, head = '- hosts: all\n  tasks:\n') => head + tasks;

  it.each([
    ['not a list', 'hosts: all\n', ['pb.yaml:1: a playbook is a list (each item starting with "- "), got a mapping']],
    ['empty file', '', ['pb.yaml: playbook is empty: expected a list']],
    ['malformed YAML', '- hosts: all\n  tasks: [\n', ['pb.yaml:3: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['missing hosts', '- name: x\n  tasks: []\n', ['pb.yaml:1 0.hosts: is required (a string)']],
    ['misspelt play key', '- hosts: all\n  gather_fact: false\n', ['pb.yaml:2 0.gather_fact: unknown key "gather_fact" — did you mean "gather_facts"?']],
    ['bad serial', '- hosts: all\n  serial: half\n', ['pb.yaml:2 0.serial: must be a number or a percentage like "50%"']],
    ['import missing', '- import_playbook: nope.yaml\n', ['pb.yaml:1 0.import_playbook: cannot read playbook nope.yaml: ENOENT']],
    ['task without module', play('    - name: nothing\n      when: true\n'), ['pb.yaml:3 0.tasks.0: task has no module key: add exactly one (e.g. "command:", "template:")']],
    ['task with two modules', play('    - copy: { content: x, dest: /x }\n      command: [/bin/true]\n'), [
      'pb.yaml:3 0.tasks.0: a task has exactly one module key, found 2: copy, command: split it into 2 tasks',
    ]],
    ['misspelt task key', play('    - command: [/bin/true]\n      whenn: true\n'), ['pb.yaml:4 0.tasks.0.whenn: unknown task key "whenn" — did you mean "when"?']],
    ['task that is a string', play('    - command true\n'), ['pb.yaml:3 0.tasks.0: a task is a mapping with one module key (e.g. "- command: [true]"), got "command true"']],
    ['listen outside handlers', play('    - command: [/bin/true]\n      listen: x\n'), ['pb.yaml:4 0.tasks.0.listen: listen: is only for handlers: move this task under handlers: or use notify:']],
    ['bad register name', play('    - command: [/bin/true]\n      register: 1x\n'), [
      'pb.yaml:4 0.tasks.0.register: must be a variable name (letters, digits, "_", not starting with a digit)',
    ]],
    ['unparsable when', play('    - command: [/bin/true]\n      when: eq (node.role "x"\n'), [
      'pb.yaml:4 0.tasks.0.when: cannot parse expression "eq (node.role \\"x\\"": unexpected "}}" after "{{eq (node.role \\"x\\""',
    ]],
    ['braces inside when', play('    - command: [/bin/true]\n      when: eq {{x}} 1\n'), ['pb.yaml:4 0.tasks.0.when: write the expression without {{ }} (e.g. eq node.role "master")']],
    ['unknown module', play('    - templte: { src: ok.hbs, dest: /x }\n'), ['pb.yaml:3 0.tasks.0.templte: unknown module "templte" — did you mean "template"?']],
    ['unknown host pattern', '- hosts: cach\n  tasks: []\n', ['pb.yaml:1 0.hosts: unknown host or group "cach" in pattern "cach" — did you mean "cache"?']],
    ['pattern matching nothing', '- hosts: "z*"\n  tasks: []\n', ['pb.yaml:1 0.hosts: warning: pattern "z*" matches no hosts: this play will do nothing']],
    ['module args: wrong type and unknown key', play('    - file:\n        path: /x\n        state: dir\n        mod: "0755"\n'), [
      'pb.yaml:5 0.tasks.0.file.state: "dir" is not one of "directory", "file", "absent"',
      'pb.yaml:6 0.tasks.0.file.mod: unknown key "mod" — did you mean "mode"?',
    ]],
    ['module args: missing required', play('    - wait_for: { timeout: 5 }\n'), ['pb.yaml:3 0.tasks.0.wait_for.port: is required (a number)']],
    ['module args: templated values are judged at run time', play('    - wait_for: { port: "{{cluster.redis.port}}" }\n    - file: "{{ file_args }}"\n      vars: { file_args: {} }\n'), []],
    ['unknown variable in args', play('    - copy: { content: "{{clustr.vip}}", dest: /x }\n'), [
      'pb.yaml:3 0.tasks.0.copy.content: unknown variable "clustr" — did you mean "cluster"?: define it in the inventory, play or task vars, or register it in an earlier task',
    ]],
    ['unknown variable in when', play('    - command: [/bin/true]\n      when: eq nod.role "master"\n'), [
      'pb.yaml:4 0.tasks.0.when: unknown variable "nod" — did you mean "node"?: define it in the inventory, play or task vars, or register it in an earlier task',
    ]],
    ['register used before it exists', play('    - command: [/bin/true]\n      when: out.changed\n    - command: [/bin/true]\n      register: out\n'), [
      'pb.yaml:4 0.tasks.0.when: unknown variable "out": define it in the inventory, play or task vars, or register it in an earlier task',
    ]],
    ['known names: inventory vars, group vars, play/task vars, registers, facts, item, runtime names', `- hosts: all
  vars: { p: 1 }
  tasks:
    - command: [/bin/true]
      register: r1
    - copy: { content: "{{env_name}} {{site}} {{p}} {{t}} {{r1.rc}} {{facts.osId}} {{item}} {{inventory_hostname}} {{node.role}}", dest: /x }
      vars: { t: 2 }
      until: eq r2.rc 0
      register: r2
`, []],
    ['until may use the task\'s own register; when may not', play('    - command: [/bin/true]\n      register: me\n      until: eq me.rc 0\n      when: me.rc\n'), [
      'pb.yaml:6 0.tasks.0.when: unknown variable "me": define it in the inventory, play or task vars, or register it in an earlier task',
    ]],
    ['notify names no handler', play('    - command: [/bin/true]\n      notify: restart redi\n', '- hosts: all\n  handlers:\n    - name: restart redis\n      command: [/bin/true]\n  tasks:\n'), [
      'pb.yaml:7 0.tasks.0.notify: no handler named "restart redi" in this play — did you mean "restart redis"?: add a handler with that name or listen: "restart redi"',
    ]],
    ['template src missing', play('    - template: { src: nope.hbs, dest: /x }\n'), [
      expect.stringMatching(/^pb\.yaml:3 0\.tasks\.0\.template\.src: template "nope\.hbs" not found \(looked in: templates\/nope\.hbs, nope\.hbs, .*\)$/),
    ]],
    ['template file with an unknown variable', play('    - template: { src: bad.hbs, dest: /x }\n'), [
      'templates/bad.hbs:2: unknown variable "bind_addres": define it in the inventory, play or task vars, or register it in an earlier task (template used by pb.yaml:3)',
    ]],
    ['template file that is fine', play('    - template: { src: ok.hbs, dest: /x }\n'), []],
    ['duplicate handler', '- hosts: all\n  handlers:\n    - name: h\n      command: [/bin/true]\n    - name: h\n      command: [/bin/true]\n', [
      'pb.yaml:5 0.handlers.1.name: handler "h" is defined twice in this play: give each handler its own name (use listen: for a shared topic)',
    ]],
  ])('%s', async (_name, text, expected) => {
    expect(await problemsOf(text)).toEqual(expected);
  });
});

describe('validatePlaybook: the fixture playbook is clean', () => {
  it('has no problems against a matching inventory', async () => {
    const pb = await loadPlaybook(join(fixtures, 'site.yaml'));
    expect(validatePlaybook(pb, inv, registry).map(formatProblem)).toEqual([]);
  });
  it('extra vars are known names', async () => {
    const pb = await loadPlaybook(join(fixtures, 'site.yaml'));
    pb.plays[1].tasks[0].args = { cmd: '{{ from_cli }}' };
    expect(validatePlaybook(pb, inv, registry).map(formatProblem)).toEqual([
      expect.stringMatching(/site\.yaml:7 1\.tasks\.0\.command\.cmd: unknown variable "from_cli"/),
    ]);
    expect(validatePlaybook(pb, inv, registry, { extraVars: { from_cli: 'x' } })).toEqual([]);
  });
});
