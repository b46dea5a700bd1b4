/**
 * Provider error messages sometimes echo the key, or part of it ("Incorrect API key provided:
 * sk-proj-****abcd"). Anything that could be the key, a piece of it, or another key is replaced
 * before a message leaves the adapter.
 */
const KEY_SHAPES: RegExp[] = [
  /\bsk-[A-Za-z0-9_*.-]{6,}/g, // OpenAI, Anthropic (sk-ant-), DeepSeek, Kimi, and masked echoes of them
  /\bAIza[0-9A-Za-z_-]{10,}/g, // Google API keys
  /\bgsk_[A-Za-z0-9]{8,}/g, // Groq
  /\bxai-[A-Za-z0-9]{8,}/g, // xAI
  /\bpplx-[A-Za-z0-9]{8,}/g, // Perplexity
  /\b[A-Za-z0-9_-]{32,}\b/g, // any long token-like run (Mistral keys are bare 32-char strings)
];

const REDACTED = '[redacted]';

export function scrubSecrets(text: string, secret?: string): string {
  let out = text;
  if (secret && secret.length >= 4) {
    out = out.split(secret).join(REDACTED);
    // Echoed fragments: the key's tail (what masks show) and its head.
    for (const piece of [secret.slice(-8), secret.slice(0, 12)]) {
      if (piece.length >= 6) out = out.split(piece).join(REDACTED);
    }
  }
  for (const shape of KEY_SHAPES) out = out.replace(shape, REDACTED);
  return out;
}
