/** Argument pieces shared by modules: file modes, names, string-or-list, shell-like splitting. */
import { z } from 'zod';

/**
 * Returns a mode as a four-digit octal string ("0640").
 * Strings are octal ("640", "0640", "0o640"). Numbers are read by their decimal digits as octal,
 * because YAML 1.2 (the `yaml` package) reads `mode: 0640` as the number 640: that is what the
 * user meant. A number whose digits are not octal (e.g. 493, i.e. 0o755 written as an int) is
 * rejected rather than guessed.
 */
export function parseMode(mode: string | number): string {
  const text = typeof mode === 'number' ? String(mode) : mode.trim().replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(text)) {
    throw new Error(`mode ${JSON.stringify(mode)} is not an octal mode: write it as a quoted string like "0640"`);
  }
  return text.padStart(4, '0');
}

/** zod: a file mode (octal string or number), normalised to "0640". */
export const modeArg = z.union([z.string(), z.number().int().nonnegative()]).transform((m, ctx) => {
  try {
    return parseMode(m);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** zod: a user or group name (or numeric id). */
export const principalArg = z.union([z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/, 'not a valid user or group name'), z.number().int().nonnegative().transform(String)]);

/** zod: an absolute path without NUL or newline. */
export const absPathArg = z
  .string()
  .regex(/^\/[^\0\n]*$/, 'must be an absolute path');

/** zod: one string or a list of strings, normalised to a list. */
export const stringListArg = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === 'string' ? [v] : v));

/**
 * Returns the words of a command line split the way sh would split it (quotes, backslashes),
 * without expanding anything: `echo "a b" 'c'` → [echo, a b, c]. Throws on an unterminated quote.
 */
export function shellSplit(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' quote in: ${line}`);
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < line.length) {
        const d = line[i];
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        // Inside double quotes a backslash only escapes these (as in sh).
        if (d === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1])) {
          cur += line[i + 1];
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
      if (!closed) throw new Error(`unterminated " quote in: ${line}`);
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) cur += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** zod: a command as an argv list, or a string split shell-like (no shell involved). */
export const argvArg = z.union([z.string(), z.array(z.string()).min(1)]).transform((v, ctx) => {
  if (Array.isArray(v)) return v;
  try {
    const words = shellSplit(v);
    if (words.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'empty command' });
      return z.NEVER;
    }
    return words;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
