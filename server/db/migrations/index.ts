import { businessMigration } from './0001_business';
import { usageMigration } from './0002_usage';

/** One schema change, applied once, in this order (server/db/migrate.ts). Never edit an applied one: add another. */
export interface Migration {
  /** `NNNN_name`, sorting in the order they apply. */
  id: string;
  sql: string;
}

/** Every migration this build knows, oldest first. They live in code so the bundle carries them. */
export const MIGRATIONS: readonly Migration[] = [businessMigration, usageMigration].filter((m) => m.sql.trim() !== '');
