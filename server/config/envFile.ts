import { parse } from 'dotenv';

export interface EnvFileProblem {
  variable: string;
  problem: string;
}

export interface ParsedEnvFile {
  values: Record<string, string>;
  /** Lines that are not `NAME=value`, a comment or blank: named by number, never quoted. */
  problems: EnvFileProblem[];
}

const ASSIGNMENT = /^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=\s*(.*)$/;
const QUOTES = new Set(['"', "'", '`']);

/**
 * An environment file read with dotenv, but only its `NAME=value` lines (and the continuation
 * lines of a quoted multi-line value). dotenv also reads `NAME: value`, and its pattern lets
 * the whitespace after the colon run over the line's end: a stray line such as `TODO:` took the
 * next line whole as its value, so a key or a setting on that line vanished without a word (a
 * property test of pool.reload found it). Every other line is left out and reported by its
 * number; its text is never repeated, since it may hold a secret.
 */
export function parseEnvFile(text: string): ParsedEnvFile {
  const lines = text.split(/\r?\n/);
  const problems: EnvFileProblem[] = [];
  /** The quote of a multi-line value still open, if any. */
  let open: string | undefined;
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i]!;
    if (open !== undefined) {
      if (line.includes(open)) open = undefined;
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const assignment = ASSIGNMENT.exec(line);
    if (!assignment) {
      problems.push({ variable: `ENV_FILE line ${i + 1}`, problem: 'is not NAME=value, a comment or blank; left out' });
      lines[i] = '';
      continue;
    }
    const value = assignment[1]!;
    const quote = value[0];
    if (quote !== undefined && QUOTES.has(quote) && !value.slice(1).includes(quote)) open = quote;
  }
  return { values: parse(lines.join('\n')), problems };
}
