import type { Migration } from './index';

/** The usage ledger and per-user limits (issue 23). */
export const usageMigration: Migration = {
  id: '0002_usage',
  sql: '',
};
