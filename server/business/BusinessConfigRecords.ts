import { BUSINESS_SETTING_KEYS, type BusinessConfigDocument, type BusinessSettingKey, type ModelEntry } from '../../shared/business';
import type { DocStore } from '../store/DocStore';

/**
 * Where BusinessConfig keeps its settings and models: the seam between the domain (validation,
 * snapshot, change notifications) and the database of record. Two implementations:
 *  - `createDocStoreBusinessRecords` (here): the DocStore, Redis or in-process, as before issue 23;
 *  - `createPgBusinessRecords` (server/db/pgBusinessRecords.ts): PostgreSQL, with DATABASE_URL.
 * Reads answer raw stored values (callers validate with zod); every write passes the secret
 * guard before anything is written.
 */
export interface BusinessConfigRecords {
  readonly kind: 'docstore' | 'postgres';
  /**
   * Writes the seeded marker, every setting and every model as one step, only while no marker
   * exists: true when it wrote. Exactly one of many concurrent callers writes; a refused value
   * (secret guard) or a failure midway writes nothing.
   */
  seed(document: BusinessConfigDocument): Promise<boolean>;
  /** What a snapshot is made of, read together. `seeded` false: the marker is gone (the store was emptied). */
  read(): Promise<{ seeded: boolean; settings: Map<string, unknown>; models: unknown[] }>;
  settings(): Promise<Map<string, unknown>>;
  setSetting(key: BusinessSettingKey, value: number): Promise<void>;
  model(id: string): Promise<unknown>;
  modelIds(): Promise<Set<string>>;
  putModel(model: ModelEntry): Promise<void>;
  /** Replaces a model only if it exists; false when it did not (a concurrent removal wins). */
  putModelIfPresent(model: ModelEntry): Promise<boolean>;
}

/**
 * DocStore layout: `business:seeded` (marker), `business:settings` (map: setting -> number),
 * `business:models` (map: model id -> ModelEntry).
 */
export const BUSINESS_KEYS = { seeded: 'business:seeded', settings: 'business:settings', models: 'business:models' } as const;

export function createDocStoreBusinessRecords(store: DocStore): BusinessConfigRecords {
  const { seeded: SEEDED, settings: SETTINGS, models: MODELS } = BUSINESS_KEYS;
  return {
    kind: 'docstore',
    seed: (document) =>
      store.transaction(
        [
          { op: 'setJson', key: SEEDED, value: { at: new Date().toISOString() } },
          ...BUSINESS_SETTING_KEYS.map((key) => ({ op: 'mapSet' as const, key: SETTINGS, field: key, value: document.settings[key] })),
          ...document.models.map((model) => ({ op: 'mapSet' as const, key: MODELS, field: model.id, value: model })),
        ],
        { ifAbsent: SEEDED },
      ),
    async read() {
      const [settings, models, seeded] = await Promise.all([store.mapGetAll(SETTINGS), store.mapGetAll(MODELS), store.getJson(SEEDED)]);
      return { seeded: seeded !== null, settings, models: [...models.values()] };
    },
    settings: () => store.mapGetAll(SETTINGS),
    setSetting: (key, value) => store.mapSet(SETTINGS, key, value),
    model: (id) => store.mapGet(MODELS, id),
    modelIds: async () => new Set((await store.mapGetAll(MODELS)).keys()),
    putModel: (model) => store.mapSet(MODELS, model.id, model),
    putModelIfPresent: (model) => store.mapSetIfPresent(MODELS, model.id, model),
  };
}
