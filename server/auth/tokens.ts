import { randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { userIdSchema, userRoleSchema, type UserRole } from '../../shared/api';

/** Who is calling, as proven by a verified token. */
export interface AuthUser {
  id: string;
  role: UserRole;
}

/** Why a token was refused; said to the caller (never the token itself). */
export type TokenRefusal = 'missing' | 'expired' | 'invalid';

export type VerifyResult = { ok: true; user: AuthUser } | { ok: false; reason: TokenRefusal };

const ALG = 'HS256';
/** Clocks of the minting machine and the gateway may differ a little; not more. */
const CLOCK_TOLERANCE_S = 5;

/** Verified tokens remembered at most (oldest dropped first). */
const MAX_VERIFIED_TOKENS = 10_000;

const claimsSchema = z.object({ sub: userIdSchema, role: userRoleSchema });

/** HS256 tokens signed with JWT_SECRET: `sub` = user id, `role` = user | admin. */
export class TokenService {
  /** Imported once: passing raw bytes makes jose import an HMAC key on every sign and verify. */
  private readonly key: Promise<CryptoKey>;
  /**
   * Tokens already verified, until their own expiry: a client sends the same token on every
   * request, and an HMAC check plus claim parsing per request showed in issue #8's profiles.
   * Only successes are kept; tokens carry no revocation, so this answers exactly as verifying
   * again would.
   */
  private readonly verified = new Map<string, { user: { id: string; role: UserRole }; expiresAtMs: number }>();

  constructor(secret: string) {
    this.key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  }

  async mint(claims: { sub: string; role: UserRole }, ttl: string | number = '1h'): Promise<string> {
    const { sub, role } = claimsSchema.parse(claims);
    return new SignJWT({ role })
      .setProtectedHeader({ alg: ALG, typ: 'JWT' })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl)
      .sign(await this.key);
  }

  async verify(token: string | null | undefined): Promise<VerifyResult> {
    if (!token) return { ok: false, reason: 'missing' };
    const known = this.verified.get(token);
    if (known) {
      if (Date.now() < known.expiresAtMs) return { ok: true, user: known.user };
      this.verified.delete(token);
    }
    try {
      // `algorithms` pins HS256: a token claiming `none` or an asymmetric alg is refused.
      const { payload } = await jwtVerify(token, await this.key, {
        algorithms: [ALG],
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp'],
      });
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) return { ok: false, reason: 'invalid' };
      const user = { id: claims.data.sub, role: claims.data.role };
      if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { user, expiresAtMs: (payload.exp! + CLOCK_TOLERANCE_S) * 1000 });
      return { ok: true, user };
    } catch (error) {
      return { ok: false, reason: error instanceof errors.JWTExpired ? 'expired' : 'invalid' };
    }
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return match?.[1] ?? null;
}

/** Demo mode without JWT_SECRET: a per-process secret, so tokens die with the process. */
export function ephemeralJwtSecret(): string {
  return randomBytes(48).toString('base64url');
}

export function refusalMessage(reason: TokenRefusal): string {
  switch (reason) {
    case 'missing':
      return 'missing bearer token (Authorization: Bearer <JWT>)';
    case 'expired':
      return 'token expired';
    default:
      return 'invalid token';
  }
}
