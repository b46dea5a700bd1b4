/** A refused business-config change. `issues` describe the rule broken, never echo secrets (config holds none). */
export class BusinessConfigError extends Error {
  override readonly name = 'BusinessConfigError';
  constructor(
    readonly code: 'invalid' | 'not_found',
    message: string,
    readonly issues: readonly { path: string; message: string }[] = [],
  ) {
    super(message);
  }
  static isInstance(value: unknown): value is BusinessConfigError {
    return value instanceof Error && value.name === 'BusinessConfigError';
  }
}
