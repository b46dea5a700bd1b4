import { TRPCClientError } from '@trpc/client';
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { startTestGateway } from '../support/gatewayHarness';
import { waitFor } from '../ops/waitFor';

/**
 * Issue 24.10 over two real gateways sharing Redis: a user whose `sub` is 40 or 64 hex
 * characters (an OIDC pairwise subject, a hashed id) used to trip the store's secret guard, so
 * they could not be limited, were never billed and got a 400 from byok.add. Now they are served,
 * limited, billed and reported like anyone else.
 */

const chat = () => ({ model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hello keyrack' }] });

async function refusal(promise: Promise<unknown>): Promise<{ message: string; data?: { code?: string } | null }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TRPCClientError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe.each([
  ['40-hex', 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'],
  ['64-hex', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
])('issue 24.10: a user whose sub is %s', (_name, sub) => {
  it('is held to RPM and budget limits, billed and reported under the real id, and can add a BYOK key', async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `kr-test-hexid-${randomBytes(4).toString('hex')}`, ENCRYPTION_KEY: randomBytes(32).toString('base64') };
    await using one = await startTestGateway({ env });
    await using two = await startTestGateway({ env });
    const admin = one.trpc(await one.token('root', 'admin'));
    const [userOne, userTwo] = [one.trpc(await one.token(sub)), two.trpc(await two.token(sub))];

    await admin.users.setLimits.mutate({ userId: sub, limits: { rpm: 2 } });
    expect(await admin.users.limits.query({ userId: sub })).toEqual({ rpm: 2 });
    await userOne.chat.complete.mutate(chat());
    await userTwo.chat.complete.mutate(chat());
    const rpm = await refusal(userOne.chat.complete.mutate(chat()));
    expect(rpm.data?.code).toBe('TOO_MANY_REQUESTS');
    expect(rpm.message).toMatch(/per-minute/);

    // Both answers billed, wherever they were served, and reported under the id itself.
    await waitFor(async () => (await userOne.usage.mine.query()).requests === 2, 'both requests in the ledger');
    const mine = await userOne.usage.mine.query();
    expect(mine.userId).toBe(sub);
    expect(mine.costUsd).toBeGreaterThan(0);
    const all = await admin.usage.byUser.query();
    expect(all.find((u) => u.userId === sub)).toMatchObject({ requests: 2, costUsd: mine.costUsd });

    // A budget below what was spent: refused on the other instance once the change reaches it.
    await admin.users.setLimits.mutate({ userId: sub, limits: { dailyBudgetUsd: mine.costUsd / 2 } });
    await waitFor(async () => /budget/.test((await refusal(userTwo.chat.complete.mutate(chat())).catch(() => ({ message: '' }))).message), 'the budget to refuse');

    const added = await userOne.byok.add.mutate({ provider: 'openai', apiKey: 'sk-test-hexid-0123456789abcdef' });
    expect((await userTwo.byok.list.query()).map((k) => k.id)).toEqual([added.id]);
  });
});
