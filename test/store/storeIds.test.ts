import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { secretRuleFor } from '../../server/store/secretGuard';
import { decodeId, encodeId } from '../../server/store/storeIds';

const HEX40 = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';
const HEX64 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

describe('storeIds', () => {
  it('issue 24.10: 40- and 64-hex user ids are stored in a form the secret guard never refuses, and decode back', () => {
    for (const id of [HEX40, HEX64, HEX64.toUpperCase()]) {
      expect(secretRuleFor(id, { entropy: false })).not.toBeNull(); // the id itself would be refused
      for (const use of ['field', 'message'] as const) {
        const stored = encodeId(id, use);
        expect(stored).toMatch(/^~[0-9a-f.]+$/);
        expect(secretRuleFor(stored)).toBeNull();
        expect(secretRuleFor(`r:${stored}`)).toBeNull();
        expect(decodeId(stored)).toBe(id);
      }
    }
  });

  it('keeps every id the store could already hold as it is (no data moves)', () => {
    for (const id of ['alice', 'user-1', 'alice@example.com', 'auth0|65f1c0ffee', 'user_2NNEqL2nrIRdJ194ndJqAHwEfxC', 'Zoë Ünïcode', '12345']) {
      expect(encodeId(id)).toBe(id);
      expect(decodeId(id)).toBe(id);
    }
    // A high-entropy id is a fine field name, but not a fine message (publish applies every rule).
    expect(encodeId('user_2NNEqL2nrIRdJ194ndJqAHwEfxC', 'message')).toMatch(/^~/);
    expect(decodeId(encodeId('user_2NNEqL2nrIRdJ194ndJqAHwEfxC', 'message'))).toBe('user_2NNEqL2nrIRdJ194ndJqAHwEfxC');
  });

  it('never collides: ids that begin with the marker, or look like an encoding, are encoded too', () => {
    const tricky = ['~', '~bob', encodeId(HEX40), `~${Buffer.from('alice').toString('hex')}`, 'sk-test-user-0123456789abcdef', 'eyJhbGciOi.eyJzdWIiOi.sig', 'Bearer abcdefghijklmnop'];
    const stored = new Set<string>();
    for (const id of tricky) {
      const field = encodeId(id);
      expect(decodeId(field)).toBe(id);
      expect(secretRuleFor(field)).toBeNull();
      stored.add(field);
    }
    expect(stored.size).toBe(tricky.length);
    // Text that merely resembles the hex form (an id stored before the hex form existed) stands for itself.
    expect(decodeId('~6')).toBe('~6');
    expect(decodeId(`~${Buffer.from('alice').toString('hex')}`)).toBe(`~${Buffer.from('alice').toString('hex')}`);
    expect(decodeId('~ff')).toBe('~ff'); // not UTF-8
  });

  it('random hex, base64url and unicode ids all round-trip and never look like a secret once encoded', () => {
    for (let i = 0; i < 300; i++) {
      const id = [randomBytes(20).toString('hex'), randomBytes(32).toString('hex'), randomBytes(24).toString('base64url'), `ключ-${randomBytes(60).toString('hex')}`][i % 4]!;
      for (const use of ['field', 'message'] as const) {
        const stored = encodeId(id, use);
        expect(decodeId(stored)).toBe(id);
        expect(secretRuleFor(stored, { entropy: use === 'message' })).toBeNull();
      }
    }
  });
});
