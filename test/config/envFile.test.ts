import { parse } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../server/config/envFile';

describe('parseEnvFile', () => {
  it('reads NAME=value lines as dotenv does: export, quotes, comments, blank lines, CRLF', () => {
    const text = '# a comment\r\n\r\nexport A=1\r\nB = "two words" # note\r\nC=\'single\'\r\nD=\r\n';
    expect(parseEnvFile(text)).toEqual({ values: parse(text), problems: [] });
    expect(parseEnvFile(text).values).toMatchObject({ A: '1', B: 'two words', C: 'single', D: '' });
  });

  it('keeps a quoted value over several lines', () => {
    const text = 'PEM="-----BEGIN KEY-----\nline two\n-----END KEY-----"\nAFTER=1\n';
    const parsed = parseEnvFile(text);
    expect(parsed.problems).toEqual([]);
    expect(parsed.values).toEqual({ PEM: '-----BEGIN KEY-----\nline two\n-----END KEY-----', AFTER: '1' });
  });

  it('leaves out and reports lines that are not NAME=value, so none can swallow the next', () => {
    const text = 'A=1\nTODO:\nB=2\n-: x\njust words\nC=3\n';
    // What dotenv alone makes of it: `TODO:` takes the line after it as its value.
    expect(parse(text).B).toBeUndefined();
    const parsed = parseEnvFile(text);
    expect(parsed.values).toEqual({ A: '1', B: '2', C: '3' });
    expect(parsed.problems.map((p) => p.variable)).toEqual(['ENV_FILE line 2', 'ENV_FILE line 4', 'ENV_FILE line 5']);
    // A line is named by its number only: it may hold a secret.
    expect(JSON.stringify(parsed.problems)).not.toMatch(/TODO|just words/);
  });
});
