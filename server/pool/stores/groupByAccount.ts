import type { PoolKey } from '../types';

export interface AccountGroups {
  /** Distinct account names, in order of first appearance in the pool's key list. */
  accounts: string[];
  /** For each key (same order as the pool's keys), the index of its account in `accounts`. */
  accountOfKey: number[];
}

/** Limits and cooldowns belong to accounts; both stores work on account indexes, not names. */
export function groupByAccount(keys: readonly PoolKey[]): AccountGroups {
  const indexByName = new Map<string, number>();
  const accounts: string[] = [];
  const accountOfKey: number[] = [];
  for (const key of keys) {
    let index = indexByName.get(key.account);
    if (index === undefined) {
      index = accounts.length;
      indexByName.set(key.account, index);
      accounts.push(key.account);
    }
    accountOfKey.push(index);
  }
  return { accounts, accountOfKey };
}
