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

const claimsSchema = z.object({ sub: userIdSchema, role: userRoleSchema });

/** HS256 tokens signed with JWT_SECRET: `sub` = user id, `role` = user | admin. */
export class TokenService {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async mint(claims: { sub: string; role: UserRole }, ttl: string | number = '1h'): Promise<string> {
    const { sub, role } = claimsSchema.parse(claims);
    return new SignJWT({ role })
      .setProtectedHeader({ alg: ALG, typ: 'JWT' })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl)
      .sign(this.key);
  }

  async verify(token: string | null | undefined): Promise<VerifyResult> {
    if (!token) return { ok: false, reason: 'missing' };
    try {
      // `algorithms` pins HS256: a token claiming `none` or an asymmetric alg is refused.
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALG],
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp'],
      });
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) return { ok: false, reason: 'invalid' };
      return { ok: true, user: { id: claims.data.sub, role: claims.data.role } };
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
