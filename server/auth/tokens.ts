import { randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { parseDurationSeconds } from '../config/env';
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

export interface TokenOptions {
  /** JWT_ISSUER: set as `iss` on tokens minted here, required on tokens verified. */
  issuer?: string | null;
  /** JWT_AUDIENCE: set as `aud` on tokens minted here, required (one of `aud`) on tokens verified. */
  audience?: string | null;
  /**
   * JWT_MAX_AGE in seconds (default 24 h): a token whose `iat` is older is refused even if its
   * `exp` is years away, and minting a longer-lived one is refused. Without it a token minted
   * with `--ttl 3650d`, or by anyone who once held the secret, worked for as long as it said.
   */
  maxAgeSeconds?: number;
  /** Milliseconds since the epoch; tests move it. Default Date.now. */
  clock?: () => number;
}

const DEFAULT_MAX_AGE_SECONDS = 24 * 3600;

/** Minting a token that outlives JWT_MAX_AGE: it would be refused before its `exp`. */
export class TokenLifetimeError extends RangeError {
  override readonly name = 'TokenLifetimeError';
}

/** HS256 tokens signed with JWT_SECRET: `sub` = user id, `role` = user | admin; `iss`/`aud` when configured. */
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

  private readonly issuer: string | null;
  private readonly audience: string | null;
  /** The longest a token lives from its `iat`, in seconds. */
  readonly maxAgeSeconds: number;
  private readonly clock: () => number;

  constructor(secret: string, options: TokenOptions = {}) {
    this.key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    this.issuer = options.issuer ?? null;
    this.audience = options.audience ?? null;
    this.maxAgeSeconds = options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
    this.clock = options.clock ?? Date.now;
  }

  /** `ttl`: seconds from now (negative for tests of expiry), or `30m` / `1h` / `7d`; at most maxAgeSeconds. */
  async mint(claims: { sub: string; role: UserRole }, ttl: string | number = '1h'): Promise<string> {
    const { sub, role } = claimsSchema.parse(claims);
    const lifetime = typeof ttl === 'number' ? ttl : parseDurationSeconds(ttl);
    if (lifetime === null) throw new RangeError('ttl must look like 30m, 1h or 7d');
    if (lifetime > this.maxAgeSeconds) throw new TokenLifetimeError(`token lifetime ${lifetime} s is over JWT_MAX_AGE (${this.maxAgeSeconds} s)`);
    const now = Math.floor(this.clock() / 1000);
    const jwt = new SignJWT({ role }).setProtectedHeader({ alg: ALG, typ: 'JWT' }).setSubject(sub).setIssuedAt(now).setExpirationTime(now + lifetime);
    if (this.issuer) jwt.setIssuer(this.issuer);
    if (this.audience) jwt.setAudience(this.audience);
    return jwt.sign(await this.key);
  }

  async verify(token: string | null | undefined): Promise<VerifyResult> {
    if (!token) return { ok: false, reason: 'missing' };
    const known = this.verified.get(token);
    if (known) {
      if (this.clock() < known.expiresAtMs) return { ok: true, user: known.user };
      this.verified.delete(token);
    }
    try {
      // `algorithms` pins HS256: a token claiming `none` or an asymmetric alg is refused.
      // `maxTokenAge` refuses an `iat` older than JWT_MAX_AGE (and one in the future), so a
      // token lives at most that long whatever its `exp`; `iat` is required for it.
      const { payload } = await jwtVerify(token, await this.key, {
        algorithms: [ALG],
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['sub', 'exp', 'iat'],
        maxTokenAge: this.maxAgeSeconds,
        currentDate: new Date(this.clock()),
        ...(this.issuer ? { issuer: this.issuer } : {}),
        ...(this.audience ? { audience: this.audience } : {}),
      });
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) return { ok: false, reason: 'invalid' };
      const user = { id: claims.data.sub, role: claims.data.role };
      if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value!);
      // Remembered until it would stop verifying: its `exp` or its maximum age, whichever is first.
      const endsAtS = Math.min(payload.exp!, payload.iat! + this.maxAgeSeconds);
      this.verified.set(token, { user, expiresAtMs: (endsAtS + CLOCK_TOLERANCE_S) * 1000 });
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
