import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import defaults from '../../server/business/defaults.json';
import { Sealed } from '../../server/store/Sealed';
import { assertNoSecrets, SecretGuardError, secretRuleFor } from '../../server/store/secretGuard';

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const randomBase62 = (n: number) => [...randomBytes(n)].map((b) => BASE62[b % 62]).join('');

describe('secret guard', () => {
  it.each([
    ['OpenAI project key', 'sk-proj-' + 'abcDEF123456ghiJKL789012mnoPQR'],
    ['OpenAI key', 'sk-test-0123456789abcdefghij'],
    ['Anthropic key', 'sk-ant-' + 'api03-abcdefghijklmnop0123'],
    ['DeepSeek/Kimi key', 'sk-0123456789abcdef0123456789abcdef'],
    ['Google key', 'AIzaSyA-test-0123456789abcdefghijklmno'],
    ['Groq key', 'gsk_test0123456789abcdefABCDEF'],
    ['xAI key', 'xai-test0123456789abcdefABCDEF'],
    ['Perplexity key', 'pplx-test0123456789abcdefABCDEF'],
    ['bearer header', 'Bearer abcdefghijklmnop.qrs'],
    ['JWT', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXRlc3Q'],
    ['PEM block', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----'],
    ['hex key material', randomBytes(32).toString('hex')],
    ['key inside a sentence', 'my key is sk-test-0123456789abcdefghij thanks'],
  ])('refuses a %s', (_kind, value) => {
    expect(secretRuleFor(value)).not.toBeNull();
  });

  it('catches random base62/base64url strings of key length (a backstop for bare keys)', () => {
    let caught = 0;
    for (let i = 0; i < 200; i++) if (secretRuleFor(randomBase62(32))) caught++;
    for (let i = 0; i < 200; i++) if (secretRuleFor(randomBytes(30).toString('base64url'))) caught++;
    // Measured rate is ~99%; the bound leaves room for chance without hiding a broken rule.
    expect(caught).toBeGreaterThan(380);
  });

  it('lets ordinary config through: every default model, display name and upstream id, dates, UUIDs, masks', () => {
    expect(() => assertNoSecrets('business:defaults', defaults)).not.toThrow();
    const ordinary = [
      'Llama-4-Maverick-17B-128E-Instruct-FP8',
      'meta-llama/Llama-4-Scout-17B-16E-Instruct',
      'accounts/fireworks/models/llama-v3p1-405b-instruct',
      'DeepSeek-R1-Distill-Llama-70B',
      'gemini-2.5-flash-preview-05-20',
      'claude-3-7-sonnet-20250219',
      'MyProductionAssistantBot2025',
      new Date(0).toISOString(),
      randomUUID(),
      'sk-…a1b2',
      'task-management-assistant-v2',
      'prompt_soft_limit',
      'Personal key for the weekend project',
    ];
    for (const value of ordinary) expect(secretRuleFor(value), value).toBeNull();
  });

  it('names the field and never echoes the value', () => {
    const secret = 'sk-test-0123456789abcdefghij';
    let error: unknown;
    try {
      assertNoSecrets('business:models', { models: [{ id: 'gpt-4o' }, { id: 'x', display_name: secret }] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SecretGuardError);
    expect((error as SecretGuardError).field).toBe('business:models.models[1].display_name');
    expect(String((error as Error).message)).not.toContain(secret);
    expect(String((error as Error).message)).toContain('display_name');
  });

  it('allows a sealed envelope by its type, and only a well-formed one', () => {
    const envelope = {
      v: 1 as const,
      kid: 'a1b2c3d4',
      iv: randomBytes(12).toString('base64'),
      tag: randomBytes(16).toString('base64'),
      ct: randomBytes(60).toString('base64'),
    };
    expect(secretRuleFor(envelope.ct)).not.toBeNull(); // the bare ciphertext would be refused...
    expect(() => assertNoSecrets('byok', { sealed: new Sealed(envelope), mask: 'sk-…a1b2' })).not.toThrow(); // ...the typed one passes
    expect(() => assertNoSecrets('byok', { sealed: envelope })).toThrow(SecretGuardError);
    // A plaintext cannot be smuggled in as a "ciphertext".
    expect(() => new Sealed({ ...envelope, ct: 'sk-test-0123456789abcdefghij' })).toThrow();
    // The rest of a record holding a Sealed is still checked.
    expect(() => assertNoSecrets('byok', { sealed: new Sealed(envelope), label: 'sk-test-0123456789abcdefghij' })).toThrow(SecretGuardError);
  });
});
