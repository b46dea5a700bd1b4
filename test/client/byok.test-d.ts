import { describe, expectTypeOf, it } from 'vitest';
import type { ProviderId } from '../../shared';
import type { ByokKey, ByokSettings, ByokTestResult } from '../../shared/byok';
import type { UserUsage } from '../../shared/usage';
import { useByokKeys, useByokSettings, useUsage, type AddByokKeyInput, type ByokKeyInfo, type UseByokKeysResult, type UseByokSettingsResult } from '../../client/sdk';

/**
 * useByokKeys / useByokSettings / useUsage take their types from the byok.* and usage.mine
 * procedures: a wrong input is a compile error (each `@ts-expect-error` must stay an error).
 */

declare const byok: UseByokKeysResult;
declare const settings: UseByokSettingsResult;

describe('useByokKeys', () => {
  it('lists masked keys and types add/test/remove from the router', () => {
    expectTypeOf(useByokKeys).parameters.toEqualTypeOf<[]>();
    expectTypeOf(byok.keys).toEqualTypeOf<readonly ByokKeyInfo[]>();
    expectTypeOf<ByokKeyInfo>().toMatchTypeOf<ByokKey>();
    expectTypeOf<ByokKeyInfo['status']>().toEqualTypeOf<'ok' | 'corrupt'>();
    // The list never carries the key itself.
    expectTypeOf<ByokKeyInfo>().not.toHaveProperty('apiKey');
    expectTypeOf<AddByokKeyInput>().toEqualTypeOf<{ provider: ProviderId; apiKey: string; label?: string | undefined }>();
    expectTypeOf(byok.add).returns.resolves.toHaveProperty('mask').toEqualTypeOf<string>();
    expectTypeOf(byok.add).returns.resolves.not.toHaveProperty('apiKey');
    expectTypeOf(byok.test).parameters.toEqualTypeOf<[id: string]>();
    expectTypeOf(byok.test).returns.resolves.toEqualTypeOf<{ result: ByokTestResult }>();
    expectTypeOf(byok.remove).returns.resolves.toEqualTypeOf<void>();
    expectTypeOf(byok.busyIds).toEqualTypeOf<ReadonlySet<string>>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error unknown provider
    void byok.add({ provider: 'nope', apiKey: 'sk-test-x' });
    // @ts-expect-error the key is required
    void byok.add({ provider: 'openai', label: 'mine' });
    // @ts-expect-error the key is a string
    void byok.add({ provider: 'openai', apiKey: 1234 });
    // @ts-expect-error test takes the key id, not an object
    void byok.test({ id: 'x' });
    // @ts-expect-error remove takes an id
    void byok.remove();
    // @ts-expect-error the hook takes no options
    useByokKeys({ provider: 'openai' });
  });
});

describe('useByokSettings', () => {
  it('reads and saves the fallback setting', () => {
    expectTypeOf(settings.settings).toEqualTypeOf<ByokSettings | null>();
    expectTypeOf(settings.save).parameter(0).toEqualTypeOf<ByokSettings>();
    expectTypeOf(useByokSettings).returns.toEqualTypeOf<UseByokSettingsResult>();
  });

  it('refuses wrong input', () => {
    // @ts-expect-error fallbackToSharedPool is a boolean
    void settings.save({ fallbackToSharedPool: 'yes' });
    // @ts-expect-error fallbackToSharedPool is required
    void settings.save({});
  });
});

describe('useUsage', () => {
  it('returns the caller usage per day (usage.mine)', () => {
    expectTypeOf(useUsage).returns.toHaveProperty('data').toEqualTypeOf<UserUsage | undefined>();
    useUsage();
    useUsage({ from: '2026-11-01', to: '2026-11-28' });
  });

  it('refuses wrong input', () => {
    // @ts-expect-error dates are strings
    useUsage({ from: 20261101 });
    // @ts-expect-error usage.mine has no userId (that is usage.byUser, admin)
    useUsage({ userId: 'someone-else' });
  });
});
