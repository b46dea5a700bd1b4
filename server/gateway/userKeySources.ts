import { createHash } from 'node:crypto';
import type { ProviderId } from '../../shared';
import type { ByokVault } from '../byok/ByokVault';
import type { KeySource } from '../dispatch/types';
import type { AcquireResult, KeyPool } from '../pool/KeyPool';

export interface UserKeySourceDeps {
  vault: ByokVault;
  pool: Pick<KeyPool, 'acquireFrom'>;
}

/** The user's own keys as a key source per provider, each provider its own small pool with its own cooldowns. */
export async function userKeySources(
  deps: UserKeySourceDeps,
  userId: string,
): Promise<{ keySources: KeySource[]; ownProviders: ReadonlySet<ProviderId>; fallbackToSharedPool: boolean }> {
  const { providers: ownProviders, fallbackToSharedPool } = await deps.vault.routing(userId);
  if (ownProviders.size === 0) return { keySources: [], ownProviders, fallbackToSharedPool: true };
  const poolOwner = createHash('sha256').update(userId).digest('hex').slice(0, 16);
  const source: KeySource = async (provider): Promise<AcquireResult> => {
    if (!ownProviders.has(provider)) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    const secrets = await deps.vault.getSecrets(userId, provider);
    if (secrets.length === 0) return { ok: false, reason: 'no_keys', retryAfterMs: null };
    return deps.pool.acquireFrom({
      id: `byok:${poolOwner}:${provider}`,
      provider,
      strategy: 'round-robin',
      rpm: 0,
      tpm: 0,
      keys: secrets.map((s) => ({ secret: s.secret, account: null })),
    });
  };
  return { keySources: [source], ownProviders, fallbackToSharedPool };
}

