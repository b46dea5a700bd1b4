import { decodeJwt, SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { bearerToken, TokenLifetimeError, TokenService } from '../../server/auth/tokens';

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
    const noExp = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt().sign(key);
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

  it('issue 24.11: a token issued longer ago than the maximum age (default 24 h) is refused, whatever its exp says', async () => {
    const now = Math.floor(Date.now() / 1000);
    const forever = (iat: number) =>
      new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt(iat).setExpirationTime(now + 10 * 365 * 86_400).sign(key);
    expect(await tokens.verify(await forever(now - 25 * 3600))).toEqual({ ok: false, reason: 'expired' });
    expect(await tokens.verify(await forever(now - 23 * 3600))).toEqual({ ok: true, user: { id: 'alice', role: 'admin' } });
    // Without iat, or with an iat in the future (to stretch the age), the age cannot be checked: refused.
    const noIat = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(key);
    expect(await tokens.verify(noIat)).toEqual({ ok: false, reason: 'invalid' });
    expect(await tokens.verify(await forever(now + 3600))).toEqual({ ok: false, reason: 'invalid' });
  });

  it('issue 24.11: a token remembered as verified stops working at its maximum age too', async () => {
    let nowMs = Date.UTC(2030, 0, 1);
    const service = new TokenService(SECRET, { maxAgeSeconds: 3600, clock: () => nowMs });
    const iat = Math.floor(nowMs / 1000);
    const token = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setIssuedAt(iat).setExpirationTime(iat + 86_400).sign(key);
    expect((await service.verify(token)).ok).toBe(true);
    nowMs += 3590_000;
    expect((await service.verify(token)).ok).toBe(true);
    nowMs += 20_000; // past iat + 1 h (+ the 5 s tolerance), long before exp
    expect(await service.verify(token)).toEqual({ ok: false, reason: 'expired' });
  });

  it('issue 24.11: minting beyond the maximum age is refused', async () => {
    const short = new TokenService(SECRET, { maxAgeSeconds: 3600 });
    await expect(short.mint({ sub: 'alice', role: 'user' }, '2h')).rejects.toBeInstanceOf(TokenLifetimeError);
    await expect(short.mint({ sub: 'alice', role: 'user' }, 7200)).rejects.toBeInstanceOf(TokenLifetimeError);
    expect(decodeJwt(await short.mint({ sub: 'alice', role: 'user' }, '1h'))).toMatchObject({ sub: 'alice', role: 'user' });
  });

  it('issue 24.11: with JWT_ISSUER / JWT_AUDIENCE set, tokens carry them and others are refused', async () => {
    const scoped = new TokenService(SECRET, { issuer: 'https://auth.example', audience: 'keyrack' });
    const own = await scoped.mint({ sub: 'alice', role: 'admin' });
    expect(decodeJwt(own)).toMatchObject({ iss: 'https://auth.example', aud: 'keyrack' });
    expect(await scoped.verify(own)).toEqual({ ok: true, user: { id: 'alice', role: 'admin' } });
    // Same secret, no iss/aud (or other ones): refused.
    expect(await scoped.verify(await tokens.mint({ sub: 'alice', role: 'admin' }))).toEqual({ ok: false, reason: 'invalid' });
    const otherAudience = await new TokenService(SECRET, { issuer: 'https://auth.example', audience: 'billing' }).mint({ sub: 'alice', role: 'admin' });
    expect(await scoped.verify(otherAudience)).toEqual({ ok: false, reason: 'invalid' });
    const otherIssuer = await new TokenService(SECRET, { issuer: 'https://evil.example', audience: 'keyrack' }).mint({ sub: 'alice', role: 'admin' });
    expect(await scoped.verify(otherIssuer)).toEqual({ ok: false, reason: 'invalid' });
    // Unset, nothing is checked (as before).
    expect((await tokens.verify(own)).ok).toBe(true);
  });
});
