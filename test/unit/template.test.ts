import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ownTemplateStore } from '../../src/cli/template-store.js';
import { ownPlaybookStore } from '../../src/cli/playbook-store.js';
import { packageRoot } from '../../src/cli/paths.js';
import { evalCondition, forgetCompiledTemplates, referencedVariables, referencedVariablesAt, renderString, renderTemplateFile, renderValue, scanReferences, TemplateError, useTemplateStore } from '../../src/template/index.js';

const vars = {
  node: { role: 'master', peer: 'b', zero: 0, nothing: null },
  cluster: { name: 'cache', redis: { port: 6379, password: "it's secret", config: { 'tcp-keepalive': 60 } } },
  xs: ['a', 'b c'],
  flag: false,
  word: 'MiXed',
  empty: '',
};

describe('renderString', () => {
  it.each([
    ['no expression', 'plain text', 'plain text'],
    ['path', 'port {{cluster.redis.port}}', 'port 6379'],
    ['no HTML escaping', '{{cluster.redis.password}} <&>', "it's secret <&>"],
    ['each over a list', '{{#each xs}}[{{this}}]{{/each}}', '[a][b c]'],
    ['each over a mapping', '{{#each cluster.redis.config}}{{@key}} {{this}}{{/each}}', 'tcp-keepalive 60'],
    ['if on a defined false value', '{{#if flag}}y{{else}}n{{/if}}', 'n'],
    ['null is defined', '{{#if node.nothing}}y{{else}}n{{/if}}', 'n'],
    ['eq', '{{#if (eq node.role "master")}}M{{/if}}', 'M'],
    ['eq number vs string', '{{eq cluster.redis.port "6379"}}', 'true'],
    ['ne', '{{ne node.role "master"}}', 'false'],
    ['gt ge lt le', '{{gt 2 1}} {{ge 1 1}} {{lt 2 1}} {{le 1 2}}', 'true true false true'],
    ['and or not', '{{and true node.role}} {{or flag empty}} {{not flag}}', 'true false true'],
    ['in list, string, mapping', '{{in "a" xs}} {{in "z" xs}} {{in "ach" cluster.name}} {{in "tcp-keepalive" cluster.redis.config}}', 'true false true true'],
    ['default on a missing variable', '{{default node.missing "d"}} {{default node.missing.deeper 5}}', 'd 5'],
    ['default on null', '{{default node.nothing "d"}}', 'd'],
    ['default keeps a defined falsy value', '{{default node.zero 5}}', '0'],
    ['defined', '{{defined node.role}} {{defined node.missing}} {{#if (defined nope)}}y{{else}}n{{/if}}', 'true false n'],
    ['join', '{{join xs ","}} / {{join xs}}', 'a,b c / a b c'],
    ['json', '{{json xs}} {{json cluster.redis.config}}', '["a","b c"] {"tcp-keepalive":60}'],
    ['quote', 'redis-cli -a {{quote cluster.redis.password}} {{quote "plain"}} {{quote xs}}', `redis-cli -a 'it'\\''s secret' plain a 'b c'`],
    ['lower upper', '{{lower word}} {{upper word}}', 'mixed MIXED'],
    ['whitespace control', 'a {{~node.role~}} b', 'amasterb'],
  ])('%s', (_name, src, expected) => {
    expect(renderString(src, vars)).toBe(expected);
  });

  it.each([
    ['missing top-level variable', '{{nope}}', 'f.yml:3 tasks.0.dest: undefined variable "nope"', 'nope'],
    ['missing nested key names the full path', 'x {{node.rol}}', 'f.yml:3 tasks.0.dest: undefined variable "node.rol"', 'node.rol'],
    ['missing intermediate key', '{{node.a.b.c}}', 'f.yml:3 tasks.0.dest: undefined variable "node.a.b.c"', 'node.a.b.c'],
    ['missing variable inside #if', '{{#if node.x}}y{{/if}}', 'f.yml:3 tasks.0.dest: undefined variable "node.x"', 'node.x'],
    ['missing helper argument', '{{eq node.x "a"}}', 'f.yml:3 tasks.0.dest: undefined variable "node.x"', 'node.x'],
    ['missing inside a subexpression', '{{#if (eq (lower node.x) "a")}}y{{/if}}', 'f.yml:3 tasks.0.dest: undefined variable "node.x"', 'node.x'],
    ['missing inside each', '{{#each xs}}{{nope}}{{/each}}', 'f.yml:3 tasks.0.dest: undefined variable "nope"', 'nope'],
    ['default checks its fallback', '{{default node.x other}}', 'f.yml:3 tasks.0.dest: undefined variable "other"', 'other'],
    ['line within a multi-line string', 'a\nb\n{{nope}}', 'f.yml:5 tasks.0.dest: undefined variable "nope"', 'nope'],
  ])('%s', (_name, src, message, variable) => {
    let err: unknown;
    try {
      renderString(src, vars, { file: 'f.yml', line: 3, path: 'tasks.0.dest' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TemplateError);
    expect((err as TemplateError).message).toBe(message);
    expect((err as TemplateError).variable).toBe(variable);
  });

  it.each([
    ['unclosed mustache', '{{ bad', 'f.yml:3: cannot parse template: unexpected character after "{{"'],
    ['unclosed block', 'a {{#if x}} b', 'f.yml:3: cannot parse template: unexpected end of text after "a {{#if x}} b"'],
    ['unknown helper', '{{frobnicate node.role}}', 'f.yml:3: Missing helper: "frobnicate"'],
    ['numeric helper on text', '{{gt node.role 1}}', 'f.yml:3: helper "gt" needs numbers, got "master"'],
  ])('%s', (_name, src, message) => {
    expect(() => renderString(src, vars, { file: 'f.yml', line: 3 })).toThrow(message);
  });

  it('does not reach prototype properties', () => {
    expect(() => renderString('{{node.constructor}}', vars)).toThrow('undefined variable "node.constructor"');
  });
});

describe('renderValue', () => {
  it('keeps the type of a single expression and renders deeply', () => {
    expect(
      renderValue({ port: '{{cluster.redis.port}}', list: '{{ xs }}', obj: '{{{cluster.redis.config}}}', text: 'p{{cluster.redis.port}}', n: 5, nested: ['{{node.zero}}', { b: '{{flag}}' }] }, vars),
    ).toEqual({ port: 6379, list: ['a', 'b c'], obj: { 'tcp-keepalive': 60 }, text: 'p6379', n: 5, nested: [0, { b: false }] });
  });
  it('returns a helper result raw', () => {
    expect(renderValue('{{ default node.missing 10 }}', vars)).toBe(10);
    expect(renderValue('{{ eq node.role "master" }}', vars)).toBe(true);
  });
  it('bare paths (read without the parser) give what the parser gives: values, literals, a helper name as a variable', () => {
    expect(renderValue('{{ true }}', vars)).toBe(true);
    expect(renderValue('{{ null }}', vars)).toBe(null);
    expect(renderValue('{{ default }}', { default: 'a variable' })).toBe('a variable');
    expect(renderValue('{{ node.zero }}', vars)).toBe(0);
    expect(() => renderValue('{{ node.nope.deeper }}', vars)).toThrow('undefined variable');
    // Not bare: still parsed, and still refused when they are not one expression.
    expect(renderValue('{{ cluster.redis.config.tcp-keepalive }}', vars)).toBe(60);
    expect(() => renderValue('{{ a }}{{ b }}', { a: 1, b: 2 })).not.toThrow();
  });
  it('names the key path inside the value', () => {
    expect(() => renderValue({ a: [{ b: '{{nope}}' }] }, vars, { file: 'f.yml', line: 2, path: 'tasks.0.copy' })).toThrow('f.yml:2 tasks.0.copy.a.0.b: undefined variable "nope"');
  });
});

describe('evalCondition', () => {
  it.each([
    ['eq node.role "master"', true],
    ['eq node.role "replica"', false],
    ['node.role', true],
    ['flag', false],
    ['node.zero', false],
    ['empty', false],
    ['node.nothing', false],
    ['xs', true],
    ['"false"', false],
    ['"0"', false],
    ['"null"', false],
    ['"undefined"', false],
    ['not flag', true],
    ['and (eq node.role "master") (not flag)', true],
    ['or flag (defined node.missing)', false],
    ['defined node.missing', false],
    ['true', true],
  ])('%s → %s', (expr, expected) => {
    expect(evalCondition(expr, vars)).toBe(expected);
  });
  it('is strict about undefined variables', () => {
    expect(() => evalCondition('eq node.rol "master"', vars, { file: 'site.yml', line: 9, path: '0.tasks.2.when' })).toThrow(
      'site.yml:9 0.tasks.2.when: undefined variable "node.rol"',
    );
    expect(() => evalCondition('nope', vars)).toThrow('undefined variable "nope"');
  });
});

describe('renderTemplateFile', () => {
  it('renders a file and names file and line of an undefined variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rha-tpl-'));
    try {
      writeFileSync(join(dir, 'ok.hbs'), 'port {{cluster.redis.port}}\n');
      writeFileSync(join(dir, 'bad.hbs'), 'port {{cluster.redis.port}}\n\nbind {{bind_address}}\n');
      expect(await renderTemplateFile(join(dir, 'ok.hbs'), vars)).toBe('port 6379\n');
      await expect(renderTemplateFile(join(dir, 'bad.hbs'), vars)).rejects.toThrow(`${join(dir, 'bad.hbs')}:3: undefined variable "bind_address"`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('referencedVariables', () => {
  it.each([
    ['port {{cluster.redis.port}} {{cluster.vip}}', ['cluster']],
    ['{{eq node.role "master"}} {{quote pw}}', ['node', 'pw']],
    ['{{#if (defined a)}}{{b}}{{else}}{{c}}{{/if}}', ['a', 'b', 'c']],
    ['{{#each xs}}{{this}} {{name}} {{@index}} {{../top}} {{@root.root_var}}{{/each}}', ['xs', 'top', 'root_var']],
    ['{{#each xs as |x|}}{{x.name}} {{outer}}{{/each}}', ['xs']],
    ['{{join list sep=","}}', ['list']],
    ['no variables', []],
  ])('%s', (src, expected) => {
    expect(referencedVariables(src)).toEqual(expected);
  });
  it('bare paths are read without the parser, with what the parser finds', () => {
    const texts = ['{{a}}', '{{ a.b.c }}', '{{{ cluster.redis.config }}}', '  {{ x_1.y }} ', '{{this}}', '{{this.a}}', '{{default}}', '{{default.x}}', '{{true}}', '{{null}}', '{{toString}}', '{{~ a ~}}', '{{a}}{{b}}', '{{a.[b c]}}', 'x {{a}}', '{{a-b}}'];
    for (const t of texts) expect(referencedVariablesAt(t), t).toEqual(scanReferences(t, {}));
    for (const e of ['a', 'a.b', 'check_mode', 'this', 'true', 'default', 'a b']) expect(referencedVariablesAt(e, { expression: true }), e).toEqual(scanReferences(e, { expression: true }));
    // Bad text still throws where it did: the shortcut takes only what is certainly one path.
    expect(() => referencedVariablesAt('{{{ a }}')).toThrow(TemplateError);
  });
  it('reads brace-less expressions', () => {
    expect(referencedVariables('and (eq node.role "master") conf.changed', { expression: true })).toEqual(['node', 'conf']);
  });
});

describe('domain helpers', () => {
  it('redis_quote escapes for redis.conf (sdssplitargs): quotes and backslashes, the rest verbatim', () => {
    const pw = String.raw`a"b\c d#$'é`;
    expect(renderString('{{redis_quote p}}', { p: pw })).toBe(String.raw`"a\"b\\c d#$'é"`);
  });
  it('add and abs express the priority rule', () => {
    expect(evalCondition('lt m (add r (abs w))', { m: 150, r: 140, w: -20 })).toBe(true);
    expect(evalCondition('lt m (add r (abs w))', { m: 200, r: 140, w: -20 })).toBe(false);
  });
});

describe('compiled templates kept between processes', () => {
  it('a template compiled once is served from the store after the process forgot it, with the same output', () => {
    const kept = new Map<string, string>();
    let gets = 0;
    useTemplateStore({ get: (src) => (gets++, kept.get(src)), set: (src, code) => void kept.set(src, code) });
    try {
      const src = 'port {{cluster.redis.port}}{{#if tls}} tls{{/if}}\n';
      const vars = { cluster: { redis: { port: 6379 } }, tls: true };
      expect(renderString(src, vars)).toBe('port 6379 tls\n');
      expect(kept.has(src)).toBe(true);
      expect(evalCondition('eq role "master"', { role: 'master' })).toBe(true);
      forgetCompiledTemplates();
      gets = 0;
      expect(renderString(src, vars)).toBe('port 6379 tls\n');
      expect(evalCondition('eq role "master"', { role: 'master' })).toBe(true);
      expect(gets).toBe(2);
      // Still strict about undefined variables, as a fresh compile is.
      expect(() => renderString(src, { tls: true })).toThrow(TemplateError);
      // A stored entry that does not evaluate is ignored: the text is compiled again.
      kept.set('x {{a}}', 'this is not javascript (');
      forgetCompiledTemplates();
      expect(renderString('x {{a}}', { a: 1 })).toBe('x 1');
    } finally {
      useTemplateStore(undefined);
      forgetCompiledTemplates();
    }
  });

  it('the variables validate finds in a text of a file are kept in the store and read back; without a file, never', () => {
    const kept = new Map<string, string>();
    useTemplateStore({ get: (src) => kept.get(src), set: (src, code) => void kept.set(src, code) });
    try {
      const expr = 'and (eq node.role "master") stored_flag_1';
      const first = referencedVariablesAt(expr, { expression: true, where: { file: '/pb/site.yaml' } });
      expect(first.map((r) => r.name)).toEqual(['node', 'stored_flag_1']);
      const entry = [...kept.entries()].find(([k]) => k.includes(expr));
      expect(JSON.parse(entry![1])).toEqual(first);
      // A later process (here: a text this one has not scanned) takes the store's word for it.
      const expr2 = 'and (eq node.role "master") stored_flag_2';
      kept.set(entry![0].replace(expr, expr2), JSON.stringify([{ name: 'from_the_store', line: 1, parts: ['from_the_store'] }]));
      expect(referencedVariablesAt(expr2, { expression: true, where: { file: '/pb/site.yaml' } }).map((r) => r.name)).toEqual(['from_the_store']);
      // The wrapping of an expression for evaluation, likewise.
      expect(evalCondition('eq stored_role_1 "master"', { stored_role_1: 'master' }, { file: '/pb/site.yaml' })).toBe(true);
      expect([...kept.entries()].find(([k]) => k.includes('eq stored_role_1 "master"'))?.[1]).toBe('{{__rha_capture (eq stored_role_1 "master")}}');
      // No file, nothing kept (a store keeps only texts of files it chooses).
      const before = kept.size;
      expect(referencedVariablesAt('or stored_flag_3 stored_flag_4', { expression: true }).map((r) => r.name)).toEqual(['stored_flag_3', 'stored_flag_4']);
      expect(kept.size).toBe(before);
    } finally {
      useTemplateStore(undefined);
    }
  });

  it("writing a store entry removes other builds' stores (dead weight after an upgrade), nothing else", () => {
    const cacheHome = mkdtempSync(join(tmpdir(), 'rha-tstore-'));
    const dir = join(cacheHome, 'rha');
    try {
      mkdirSync(dir, { mode: 0o700 });
      const old = ['playbook-0123456789ab-0123456789ab.json', 'playbook-0123456789abcdef0123.json', 'templates-0123456789abcdef0123.json'];
      const others = ['cli-0123-provision.v8', 'keeper-x.sock.txt', 'playbook-notes.txt'];
      for (const f of [...old, ...others]) writeFileSync(join(dir, f), '{}');
      ownPlaybookStore(join(packageRoot(), 'playbooks', 'site.yaml'), { XDG_CACHE_HOME: cacheHome })!.set('/x/site.yaml', { files: {}, playbook: {} } as never);
      const t = ownTemplateStore({ XDG_CACHE_HOME: cacheHome })!;
      t.set('c {{x}}', 'code-c', { file: join(packageRoot(), 'templates', 'redis', 'redis.conf.hbs') });
      process.emit('beforeExit', 0);
      const left = readdirSync(dir);
      for (const f of old) expect(left).not.toContain(f);
      for (const f of others) expect(left).toContain(f);
      expect(left.filter((f) => /^playbook-.*\.json$/.test(f))).toHaveLength(1);
      expect(left.filter((f) => /^templates-.*\.json$/.test(f))).toHaveLength(1);
    } finally {
      rmSync(cacheHome, { recursive: true, force: true });
    }
  });

  it("rha's store keeps only texts from rha's own templates and playbooks", () => {
    const cacheHome = mkdtempSync(join(tmpdir(), 'rha-tstore-'));
    try {
      const s = ownTemplateStore({ XDG_CACHE_HOME: cacheHome })!;
      expect(s).toBeDefined();
      s.set('a {{x}}', 'code-a', { file: '/etc/someone/playbook.yaml' });
      s.set('b {{x}}', 'code-b', {});
      s.set('c {{x}}', 'code-c', { file: join(packageRoot(), 'templates', 'redis', 'redis.conf.hbs') });
      s.set('d {{x}}', 'code-d', { file: join(packageRoot(), 'playbooks', 'site.yaml') });
      expect([s.get('a {{x}}'), s.get('b {{x}}'), s.get('c {{x}}'), s.get('d {{x}}')]).toEqual([undefined, undefined, 'code-c', 'code-d']);
      expect(ownTemplateStore({ XDG_CACHE_HOME: cacheHome, RHA_NO_CODE_CACHE: '1' })).toBeUndefined();
    } finally {
      rmSync(cacheHome, { recursive: true, force: true });
    }
  });
});
