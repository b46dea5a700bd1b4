import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { bearerToken, TokenService } from '../../server/auth/tokens';

const SECRET = 'test-secret-for-token-service-0123456789abcdef';
const tokens = new TokenService(SECRET);
const key = new TextEncoder().encode(SECRET);

describe('TokenService', () => {
  it('verifies a token it minted: sub and role', async () => {
    const token = await tokens.mint({ sub: 'alice', role: 'admin' });
    expect(await tokens.verify(token)).toEqual({ ok: true, user: { id: 'alice', role: 'admin' } });
  });

  it('a token verified once answers the same from memory; a copy with one byte changed is still refused', async () => {
    const token = await tokens.mint({ sub: 'bob', role: 'user' });
    expect(await tokens.verify(token)).toEqual({ ok: true, user: { id: 'bob', role: 'user' } });
    expect(await tokens.verify(token)).toEqual({ ok: true, user: { id: 'bob', role: 'user' } });
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const tampered = token.slice(0, -2) + last + token.slice(-1);
    expect(await tokens.verify(tampered)).toEqual({ ok: false, reason: 'invalid' });
    const elevated = await new TokenService('another-secret-another-secret-another-secret').mint({ sub: 'bob', role: 'admin' });
    expect(await tokens.verify(elevated)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses a missing token', async () => {
    expect(await tokens.verify(undefined)).toEqual({ ok: false, reason: 'missing' });
  });

  it('refuses an expired token (beyond the small clock tolerance)', async () => {
    const token = await tokens.mint({ sub: 'alice', role: 'user' }, -60);
    expect(await tokens.verify(token)).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses a token signed with another secret', async () => {
    const forged = await new TokenService('another-secret-another-secret-another-secret').mint({ sub: 'alice', role: 'admin' });
    expect(await tokens.verify(forged)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses alg "none" and tokens without a role or expiry', async () => {
    const unsecured = new UnsecuredJWT({ role: 'admin' }).setSubject('alice').setExpirationTime('1h').encode();
    expect(await tokens.verify(unsecured)).toEqual({ ok: false, reason: 'invalid' });
    const noRole = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(key);
    expect(await tokens.verify(noRole)).toEqual({ ok: false, reason: 'invalid' });
    const noExp = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(key);
    expect(await tokens.verify(noExp)).toEqual({ ok: false, reason: 'invalid' });
    const badRole = await new SignJWT({ role: 'root' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(key);
    expect(await tokens.verify(badRole)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('reads bearer tokens from the Authorization header', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
});
