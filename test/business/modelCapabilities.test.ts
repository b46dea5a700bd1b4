import { describe, expect, it } from 'vitest';
import { BusinessConfig, DEFAULT_BUSINESS_CONFIG } from '../../server/business/BusinessConfig';
import { createMemoryDocStore } from '../../server/store/memoryDocStore';
import { NO_CAPABILITIES } from '../../shared/business';

/** Issue 20: what each model can take lives in the catalog, where admins edit it. */
describe('catalog capabilities', () => {
  it('issue 20: the shipped catalog records tools, vision, json_schema and reasoning per model', async () => {
    const config = new BusinessConfig({ store: createMemoryDocStore() });
    await config.init();
    expect((await config.resolve('gpt-4o'))?.capabilities).toEqual({ tools: true, vision: true, json_schema: true, reasoning: false });
    expect((await config.resolve('sonar'))?.capabilities.tools).toBe(false);
    expect((await config.resolve('deepseek-reasoner'))?.capabilities.reasoning).toBe(true);
  });

  it('issue 20: an entry stored without capabilities gets the shipped ones for its id, else none; an upsert sets them', async () => {
    const store = createMemoryDocStore();
    const config = new BusinessConfig({ store, defaults: { settings: DEFAULT_BUSINESS_CONFIG.settings, models: [] } });
    await config.init();
    // As an earlier version stored them: no capabilities field.
    const old = { provider: 'openai', display_name: 'x', input_price: 1, output_price: 1, is_active: true, fallbacks: [] };
    await store.mapSet('business:models', 'gpt-4o', { id: 'gpt-4o', ...old });
    await store.mapSet('business:models', 'in-house', { id: 'in-house', ...old });
    const reread = new BusinessConfig({ store });
    expect((await reread.resolve('gpt-4o'))?.capabilities).toEqual({ tools: true, vision: true, json_schema: true, reasoning: false });
    expect((await reread.resolve('in-house'))?.capabilities).toEqual(NO_CAPABILITIES);
    const edited = await reread.upsertModel({ id: 'in-house', ...old, provider: 'openai', capabilities: { tools: true, vision: false, json_schema: false, reasoning: false } });
    expect(edited.capabilities.tools).toBe(true);
    expect((await reread.resolve('in-house'))?.capabilities.tools).toBe(true);
  });
});
