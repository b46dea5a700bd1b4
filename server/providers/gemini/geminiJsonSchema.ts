import type { JsonObject } from '../../../shared';
import { ProviderError } from '../ProviderError';

/**
 * The JSON Schema keywords Gemini's `parametersJsonSchema` / `responseJsonSchema` honour, as the
 * Gemini API documents them ("only the following properties are supported"). Gemini ignores
 * any other constraint, so a schema using one (`pattern`, `minLength`, `const`, `allOf`, `not`,
 * ...) would be silently weakened: Keyrack refuses it instead, naming the keyword.
 */
const SUPPORTED = new Set([
  '$id', '$defs', '$ref', '$anchor', 'type', 'format', 'title', 'description', 'enum', 'items', 'prefixItems',
  'minItems', 'maxItems', 'minimum', 'maximum', 'anyOf', 'oneOf', 'properties', 'additionalProperties', 'required',
  'propertyOrdering',
]);
/** Annotations constrain nothing, so passing them on (where Gemini ignores them) loses nothing. */
const ANNOTATIONS = new Set(['$schema', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly']);
const MAX_DEPTH = 64;

/** Throws a bad_request naming the first keyword (by its path, e.g. `tools[0].parameters.properties.city.pattern`) Gemini cannot take. */
export function checkGeminiJsonSchema(schema: JsonObject, path: string): void {
  checkSchema(schema, path, 0);
}

function refuse(path: string, why: string): never {
  throw new ProviderError({ kind: 'bad_request', status: 400, message: `google cannot take ${path} through Keyrack: ${why}`, param: path });
}

function checkSchema(schema: unknown, path: string, depth: number): void {
  if (depth > MAX_DEPTH) refuse(path, `a schema nested deeper than ${MAX_DEPTH} levels`);
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) refuse(path, 'a JSON schema is an object');
  const s = schema as Record<string, unknown>;
  for (const [key, value] of Object.entries(s)) {
    const at = `${path}.${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!SUPPORTED.has(key)) refuse(at, `Gemini does not support the JSON Schema keyword ${key}`);
    if (key.startsWith('$') || value === undefined) continue;
    if (s.$ref !== undefined) refuse(at, 'beside $ref Gemini takes only $ keywords');
    switch (key) {
      case 'properties':
      case '$defs':
        eachEntry(value, at, (child, childPath) => checkSchema(child, childPath, depth + 1));
        break;
      case 'items':
        checkSchema(value, at, depth + 1);
        break;
      case 'additionalProperties':
        if (typeof value !== 'boolean') checkSchema(value, at, depth + 1);
        break;
      case 'prefixItems':
      case 'anyOf':
      case 'oneOf':
        if (!Array.isArray(value)) refuse(at, 'a list of schemas');
        value.forEach((child, i) => checkSchema(child, `${at}[${i}]`, depth + 1));
        break;
      case 'enum':
        if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' && typeof v !== 'number')) refuse(at, 'Gemini takes enums of strings and numbers only');
        break;
    }
  }
}

function eachEntry(value: unknown, path: string, check: (child: unknown, childPath: string) => void): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) refuse(path, 'an object of schemas');
  for (const [name, child] of Object.entries(value)) check(child, `${path}.${name}`);
}
