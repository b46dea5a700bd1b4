import type { z } from 'zod';
import {
  BUSINESS_SETTING_KEYS,
  businessConfigSchema,
  businessSettingsSchema,
  modelEntrySchema,
  setBusinessSettingInputSchema,
  setModelActiveInputSchema,
  type BusinessConfigDocument,
  type BusinessSettings,
  type ModelEntry,
  type ModelEntryInput,
  type SetBusinessSettingInput,
} from '../../shared/business';
import { providerIdSchema } from '../../shared/providers';
import type { DocStore } from '../store/DocStore';
import { NotifiedCache } from '../store/NotifiedCache';
import { BusinessConfigError } from './BusinessConfigError';
import { createDocStoreBusinessRecords, type BusinessConfigRecords } from './BusinessConfigRecords';
import defaultsFile from './defaults.json';
import type { ModelCatalog, ResolvedModel } from './types';

/**
 * Limits, pricing and the model list, kept in the database of record (`records`: the DocStore,
 * or PostgreSQL with DATABASE_URL) so admins change them at run time.
 * Seeded once from defaults.json (the first instance to start writes it; later starts and other
 * instances leave admin changes alone).
 *
 * Reads are served from an in-process snapshot of the settings and the model list: resolving a
 * model is on every request's path, and a store read there cost a Redis round trip each (three
 * with fallbacks; issue #8). The snapshot is the one entry of a NotifiedCache on the `business`
 * channel: every write drops it here and announces it, so a change applies to the next request
 * everywhere within the pub/sub delivery time (milliseconds); a snapshot older than `maxAgeMs`
 * is reloaded anyway, in case a notification was lost. Until `init()` has subscribed, nothing
 * is cached: every read goes to the store.
 *
 * Change notifications and the snapshot's cache always go through `store` (Redis pub/sub when
 * REDIS_URL is set), wherever the records live. Layouts: BusinessConfigRecords.ts, and
 * server/db/migrations/0001_business.ts for PostgreSQL.
 */

export const BUSINESS_CHANNEL = 'business';
/**
 * The snapshot's key in the cache, which is also what a change announces on the channel: the
 * word every earlier version published, so instances of two versions still hear each other.
 */
const SNAPSHOT = 'changed';

export const DEFAULT_BUSINESS_CONFIG: BusinessConfigDocument = businessConfigSchema.parse(defaultsFile);

/** The shipped capabilities of each model defaults.json knows, for entries stored without any. */
const SHIPPED_CAPABILITIES = new Map(DEFAULT_BUSINESS_CONFIG.models.map((m) => [m.id, m.capabilities]));

/**
 * A stored or upserted entry as modelEntrySchema reads it, its capabilities filled in when it
 * has none (written before issue 20, or upserted without them): the shipped ones for its id.
 */
function withCapabilities(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || 'capabilities' in value) return value;
  const shipped = SHIPPED_CAPABILITIES.get(String((value as { id?: unknown }).id));
  return shipped ? { ...value, capabilities: shipped } : value;
}

export interface BusinessConfigOptions {
  /** Carries change notifications; holds the records too unless `records` is given. */
  store: DocStore;
  /** Where settings and models live. Default: the DocStore `store` (createDocStoreBusinessRecords). */
  records?: BusinessConfigRecords;
  /** What a fresh store is seeded with. Default: server/business/defaults.json. */
  defaults?: BusinessConfigDocument;
  /** Longest a snapshot is trusted without a notification. Default 1000 ms. */
  maxAgeMs?: number;
  clock?: () => number;
  /** Told when the store was found emptied while running (Redis restarted without persistence) and defaults were written again. */
  onReseed?: () => void;
}

/** What the hot path reads: validated once per load, not per request. */
interface Snapshot {
  settings: Readonly<BusinessSettings>;
  byId: Map<string, ModelEntry>;
  /**
   * Each active model as resolve() answers it, made once per snapshot: resolve() runs twice per
   * request and built a new object (and fallbacks array) each time (issue #8). Frozen: shared.
   */
  resolvedById: Map<string, ResolvedModel>;
  /** Sorted by provider then id. */
  models: ModelEntry[];
}

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

export class BusinessConfig implements ModelCatalog {
  private readonly store: DocStore;
  private readonly records: BusinessConfigRecords;
  private readonly defaults: BusinessConfigDocument;
  private readonly onReseed: () => void;
  private readonly cache: NotifiedCache<Snapshot>;
  private started = false;

  constructor(options: BusinessConfigOptions) {
    this.store = options.store;
    this.records = options.records ?? createDocStoreBusinessRecords(options.store);
    this.defaults = options.defaults ?? DEFAULT_BUSINESS_CONFIG;
    this.onReseed = options.onReseed ?? (() => {});
    this.cache = new NotifiedCache({
      store: options.store,
      channel: BUSINESS_CHANNEL,
      ...(options.maxAgeMs !== undefined ? { maxAgeMs: options.maxAgeMs } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }

  /**
   * Seeds the store from the defaults unless some instance already did, and subscribes to change
   * notifications (which turns the snapshot on). Call once at start.
   */
  async init(): Promise<{ seeded: boolean }> {
    // Subscribed before the first snapshot is loaded, so no change can slip in between.
    await this.cache.start();
    this.started = true;
    return { seeded: await this.seedIfAbsent() };
  }

  /**
   * Writes the defaults when no instance has yet, then announces them like any change. The
   * marker, the settings and the models are one transaction, written only while the marker is
   * absent: exactly one instance writes, and a writer that fails midway (it crashed, Redis went
   * away, a value was refused) leaves no marker over a partial catalog, so the next start seeds.
   */
  private async seedIfAbsent(): Promise<boolean> {
    if (!(await this.records.seed(this.defaults))) return false;
    await this.cache.changed(SNAPSHOT);
    return true;
  }

  /** Stops listening for changes (the store's own close does the same). Reads go to the store again. */
  async close(): Promise<void> {
    this.started = false;
    await this.cache.close();
  }

  async getConfig(): Promise<BusinessConfigDocument> {
    const current = await this.current();
    return { settings: current.settings, models: current.models.map((m) => ({ ...m, fallbacks: [...m.fallbacks] })) };
  }

  /**
   * Stored settings over the defaults (a setting added in a later version starts at its default).
   * The snapshot's own object, frozen: read on every request, so not copied each time.
   */
  async getSettings(): Promise<Readonly<BusinessSettings>> {
    return (await this.current()).settings;
  }

  private async readSettings(stored?: Map<string, unknown>): Promise<BusinessSettings> {
    stored ??= await this.records.settings();
    const merged: Record<string, unknown> = { ...this.defaults.settings };
    for (const key of BUSINESS_SETTING_KEYS) if (stored.has(key)) merged[key] = stored.get(key);
    const parsed = businessSettingsSchema.safeParse(merged);
    // A stored value that no longer validates (edited by hand) falls back to the defaults, loudly in tests.
    return parsed.success ? parsed.data : this.defaults.settings;
  }

  /** Changes one setting, checked on its own and against the others (hard >= soft). */
  async setConfig(key: SetBusinessSettingInput['key'], value: unknown): Promise<BusinessSettings> {
    const input = setBusinessSettingInputSchema.safeParse({ key, value });
    if (!input.success) throw new BusinessConfigError('invalid', `invalid value for ${String(key)}`, issuesOf(input.error));
    const next = { ...(await this.readSettings()), [input.data.key]: input.data.value };
    const checked = businessSettingsSchema.safeParse(next);
    if (!checked.success) throw new BusinessConfigError('invalid', checked.error.issues.map((i) => i.message).join('; '), issuesOf(checked.error));
    await this.records.setSetting(input.data.key, input.data.value);
    await this.cache.changed(SNAPSHOT);
    return checked.data;
  }

  /** Adds or replaces a model. Fallbacks must name other models already in the list. */
  async upsertModel(input: ModelEntryInput): Promise<ModelEntry> {
    const parsed = modelEntrySchema.safeParse(withCapabilities(input));
    if (!parsed.success) throw new BusinessConfigError('invalid', 'invalid model', issuesOf(parsed.error));
    const model = parsed.data;
    const known = await this.records.modelIds();
    const problems = model.fallbacks.flatMap((id, i) =>
      id === model.id ? [{ path: `fallbacks.${i}`, message: 'a model cannot fall back to itself' }] : known.has(id) ? [] : [{ path: `fallbacks.${i}`, message: `unknown model: ${id}` }],
    );
    if (problems.length > 0) throw new BusinessConfigError('invalid', problems.map((p) => p.message).join('; '), problems);
    await this.records.putModel(model);
    await this.cache.changed(SNAPSHOT);
    return model;
  }

  async setModelActive(id: string, isActive: boolean): Promise<ModelEntry> {
    const input = setModelActiveInputSchema.safeParse({ id, is_active: isActive });
    if (!input.success) throw new BusinessConfigError('invalid', 'invalid input', issuesOf(input.error));
    const current = await this.storedModel(input.data.id);
    if (!current) throw new BusinessConfigError('not_found', `unknown model: ${input.data.id}`);
    const next = { ...current, is_active: input.data.is_active };
    if (!(await this.records.putModelIfPresent(next))) throw new BusinessConfigError('not_found', `unknown model: ${next.id}`);
    await this.cache.changed(SNAPSHOT);
    return next;
  }

  /**
   * Resolves what a client asked for, among active models only:
   *  - a catalog id (`gpt-4o`), exactly;
   *  - `provider/model` (`anthropic/claude-sonnet-4` or `anthropic/claude-sonnet-4-20250514`):
   *    the active model of that provider whose catalog id or upstream id matches.
   * Anything else is unknown (null). Unlisted upstream models are deliberately not passed
   * through: they would have no price, so they would be served free and bypass budgets, and
   * admins could not switch them off.
   */
  async resolve(name: string): Promise<ResolvedModel | null> {
    const { byId, models, resolvedById } = await this.current();
    const exact = byId.get(name);
    if (exact) return resolvedById.get(exact.id) ?? null;
    const slash = name.indexOf('/');
    if (slash <= 0) return null;
    const provider = providerIdSchema.safeParse(name.slice(0, slash));
    if (!provider.success) return null;
    const wanted = name.slice(slash + 1);
    const match =
      models.find((m) => m.is_active && m.provider === provider.data && m.id === wanted) ??
      models.find((m) => m.is_active && m.provider === provider.data && (m.upstream_model ?? m.id) === wanted);
    return match ? (resolvedById.get(match.id) ?? null) : null;
  }

  /** Active models, for clients to choose from. */
  async list(): Promise<ResolvedModel[]> {
    const { models, resolvedById } = await this.current();
    return models.flatMap((m) => resolvedById.get(m.id) ?? []);
  }

  /** Called after any change made through any instance. Returns an unsubscribe function. */
  onChange(listener: () => void): Promise<() => Promise<void>> {
    return this.store.subscribe(BUSINESS_CHANNEL, () => listener());
  }

  /** The snapshot, loaded when missing or stale; before init(), a fresh read every time. */
  private current(): Promise<Snapshot> {
    return this.cache.get(SNAPSHOT, () => this.load());
  }

  private async load(): Promise<Snapshot> {
    const stored = await this.records.read();
    const [settings, models] = [await this.readSettings(stored.settings), validModels(stored.models)];
    // The marker gone while running means the store lost everything (a Redis restarted without
    // persistence): an empty catalog would refuse every model, so the defaults go back in (admin
    // changes since are lost; the README's operations section says to run Redis with persistence).
    // This load answers from the defaults themselves (what is being written, in one step). The
    // instance that writes them announces them, which drops this answer here and everywhere
    // (it is not kept past that).
    if (!stored.seeded && this.started) {
      if (await this.seedIfAbsent()) this.onReseed();
      return snapshotOf(this.defaults.settings, [...this.defaults.models]);
    }
    return snapshotOf(settings, models);
  }

  private async storedModel(id: string): Promise<ModelEntry | null> {
    const stored = await this.records.model(id);
    if (stored === null || stored === undefined) return null;
    const parsed = modelEntrySchema.safeParse(withCapabilities(stored));
    return parsed.success ? parsed.data : null;
  }

}

/** The stored models that validate (an entry edited by hand into something invalid is skipped). */
function validModels(values: readonly unknown[]): ModelEntry[] {
  const out: ModelEntry[] = [];
  for (const value of values) {
    const parsed = modelEntrySchema.safeParse(withCapabilities(value));
    if (parsed.success) out.push(parsed.data);
  }
  return out;
}

function snapshotOf(settings: BusinessSettings, models: ModelEntry[]): Snapshot {
  models.sort((a, b) => a.provider.localeCompare(b.provider) || a.id.localeCompare(b.id));
  const resolvedById = new Map(models.filter((m) => m.is_active).map((m) => [m.id, toResolved(m)]));
  return { settings: Object.freeze({ ...settings }), models, byId: new Map(models.map((m) => [m.id, m])), resolvedById };
}

export function toResolved(model: ModelEntry): ResolvedModel {
  return Object.freeze({
    id: model.id,
    provider: model.provider,
    upstreamModel: model.upstream_model ?? model.id,
    displayName: model.display_name,
    inputPrice: model.input_price,
    outputPrice: model.output_price,
    fallbacks: Object.freeze([...model.fallbacks]),
    capabilities: Object.freeze({ ...model.capabilities }),
    kind: model.kind,
    ...(model.embedding ? { embedding: Object.freeze({ dimensions: model.embedding.dimensions, adjustableDimensions: model.embedding.adjustable_dimensions }) } : {}),
  });
}
