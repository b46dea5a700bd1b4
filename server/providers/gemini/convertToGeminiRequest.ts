import { messageText } from '../../../shared';
import { refuseUnsupported, type CarriedField } from '../request/refuseUnsupported';
import type { UpstreamRequest } from '../types';
import type { GeminiGenerateContentRequestBody } from './geminiApi';

/** System messages become `systemInstruction`; `assistant` is Gemini's `model`. */
const CARRIED: ReadonlySet<CarriedField> = new Set(['maxTokens', 'temperature']);

export function convertToGeminiRequest(req: UpstreamRequest): GeminiGenerateContentRequestBody {
  refuseUnsupported(req, 'google', CARRIED);
  const isInstruction = (role: string) => role === 'system' || role === 'developer';
  const system = req.messages.filter((m) => isInstruction(m.role)).map((m) => ({ text: messageText(m) }));
  const contents: GeminiGenerateContentRequestBody['contents'] = [];
  for (const m of req.messages) {
    if (isInstruction(m.role)) continue;
    // Text only until tool messages are carried (refused above).
    const role = m.role === 'assistant' ? 'model' : 'user';
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push({ text: messageText(m) });
    else contents.push({ role, parts: [{ text: messageText(m) }] });
  }
  const body: GeminiGenerateContentRequestBody = { contents };
  if (system.length > 0) body.systemInstruction = { parts: system };
  const generationConfig: NonNullable<GeminiGenerateContentRequestBody['generationConfig']> = {};
  if (req.maxTokens !== undefined) generationConfig.maxOutputTokens = req.maxTokens;
  if (req.temperature !== undefined) generationConfig.temperature = req.temperature;
  if (Object.keys(generationConfig).length > 0) body.generationConfig = generationConfig;
  return body;
}

/** `models/gemini-2.0-flash` and `gemini-2.0-flash` both name the model; the path wants the bare id. */
export function geminiModelPath(model: string): string {
  return encodeURIComponent(model.replace(/^models\//, ''));
}
