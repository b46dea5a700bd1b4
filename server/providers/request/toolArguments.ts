/**
 * A tool call's arguments as the JSON object Anthropic (`tool_use.input`) and Gemini
 * (`functionCall.args`) take, from the JSON text OpenAI's wire and Keyrack's messages carry:
 * '' (a call without arguments) is {}. Anything else that is not a JSON object cannot be sent:
 * the caller refuses it, naming the field.
 */
export function toolArgumentsObject(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; problem: 'not_json' | 'not_object' } {
  if (text.trim() === '') return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not_json' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problem: 'not_object' };
  return { ok: true, value: value as Record<string, unknown> };
}
