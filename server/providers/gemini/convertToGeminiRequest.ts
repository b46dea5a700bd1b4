import type { UpstreamRequest } from '../types';
import type { GeminiGenerateContentRequestBody } from './geminiApi';

/** System messages become `systemInstruction`; `assistant` is Gemini's `model`. */
export function convertToGeminiRequest(req: UpstreamRequest): GeminiGenerateContentRequestBody {
  const system = req.messages.filter((m) => m.role === 'system').map((m) => ({ text: m.content }));
  const contents: GeminiGenerateContentRequestBody['contents'] = [];
  for (const m of req.messages) {
    if (m.role === 'system') continue;
    const role = m.role === 'assistant' ? 'model' : 'user';
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push({ text: m.content });
    else contents.push({ role, parts: [{ text: m.content }] });
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
