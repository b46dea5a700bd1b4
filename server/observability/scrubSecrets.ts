/**
 * Key-shaped substrings inside free text. Redaction by path (logger.ts) covers fields we name;
 * this covers text we do not control: an upstream error body that echoes the key it was sent, a
 * store error quoting a command, a thrown message. The shapes are the providers' documented key
 * prefixes plus bearer credentials and JWTs; a fingerprint or a mask (`sk-…abcd`) is too short
 * or lacks the run of key characters, so it survives.
 */
const KEY_SHAPES = new RegExp(
  [
    String.raw`\bsk-[A-Za-z0-9_-]{16,}`, // OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), DeepSeek, Kimi/Moonshot
    String.raw`\bAIza[0-9A-Za-z_-]{20,}`, // Google
    String.raw`\bgsk_[A-Za-z0-9]{20,}`, // Groq
    String.raw`\bxai-[A-Za-z0-9]{20,}`, // xAI
    String.raw`\bpplx-[A-Za-z0-9]{20,}`, // Perplexity
    String.raw`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`, // JWTs
    String.raw`\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}`,
  ].join('|'),
  'g',
);

export const SCRUBBED = '[redacted]';

export function scrubSecrets(text: string): string {
  return text.replace(KEY_SHAPES, SCRUBBED);
}
