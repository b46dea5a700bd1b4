import { randomBytes } from 'node:crypto';
import { toolCallIdSchema } from '../../../shared';

/**
 * Gemini's functionCall `id` is optional and most Gemini API models leave it out, but every
 * Keyrack tool call has an id (a later tool message answers it by id). Missing ones are made up
 * as `gcall_<responseId>_<index>`; the prefix marks them so that the conversion does not send an
 * id back that Gemini never issued (Gemini pairs calls and responses by order and name then).
 */
const GENERATED_PREFIX = 'gcall_';

/** What an answer's made-up ids share: its responseId (unique per answer), or random bytes without one. */
export function toolCallIdSeed(responseId: string | null | undefined): string {
  return responseId?.replace(/[^A-Za-z0-9]/g, '').slice(0, 64) || randomBytes(6).toString('hex');
}

/** The id a Keyrack client sees for the `index`-th call of an answer: Gemini's own when it sent a usable one. */
export function geminiToolCallId(given: string | null | undefined, seed: string, index: number): string {
  if (given && toolCallIdSchema.safeParse(given).success && !given.startsWith(GENERATED_PREFIX)) return given;
  return `${GENERATED_PREFIX}${seed}_${index}`;
}

/** Whether an id was made up by Keyrack (not sent back to Gemini). */
export function isGeneratedToolCallId(id: string): boolean {
  return id.startsWith(GENERATED_PREFIX);
}
