import { ApiError, FunctionCallingConfigMode, GoogleGenAI, Type, type GenerateContentResponse } from '@google/genai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockProvider, type MockProvider } from '../../server/mock-provider/startMockProvider';

/** The official @google/genai client against the mock's Gemini wire: tools, thinking, structured output, images (issue 20). */

const GEMINI_KEY = 'AIza-test-gemini-0000000020';
const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAghm3WQAAAABJRU5ErkJggg==';
const weather = {
  name: 'get_weather',
  description: 'The weather in a city',
  parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
};
const time = { name: 'get_time', description: 'The time now', parametersJsonSchema: { type: 'object', properties: {} } };

let mock: MockProvider;
beforeAll(async () => {
  mock = await startMockProvider({ clock: () => Date.parse('2026-01-01T00:00:00Z') });
});
afterAll(() => mock.close());
const client = () => new GoogleGenAI({ apiKey: GEMINI_KEY, httpOptions: { baseUrl: mock.baseUrls.gemini } });

async function streamed(stream: AsyncGenerator<GenerateContentResponse>): Promise<GenerateContentResponse[]> {
  const chunks: GenerateContentResponse[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

describe('gemini mock: tools, thinking, structured output and images through @google/genai (issue 20)', () => {
  it('issue 20: a named function (ANY + allowedFunctionNames) comes back as a functionCall whose args fit its schema, finishReason STOP', async () => {
    const response = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'what is the weather?',
      config: { tools: [{ functionDeclarations: [time, weather] }], toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.ANY, allowedFunctionNames: ['get_weather'] } } },
    });
    expect(response.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'mock', unit: 'celsius' } }]);
    expect(response.candidates?.[0]?.finishReason).toBe('STOP');
    expect(response.candidates?.[0]?.content?.parts?.some((part) => part.text !== undefined)).toBe(false);
  });

  it('issue 20: a streamed answer carries the calls the user asked for (AUTO) whole, in its last chunk', async () => {
    const chunks = await streamed(
      await client().models.generateContentStream({
        model: 'gemini-2.5-flash',
        contents: 'call get_time and get_weather please',
        config: { tools: [{ functionDeclarations: [weather, time] }] },
      }),
    );
    const calls = chunks.flatMap((chunk) => chunk.functionCalls ?? []);
    expect(calls.map((call) => call.name)).toEqual(['get_weather', 'get_time']);
    expect(calls[1]?.args).toEqual({});
    expect(chunks.at(-1)?.candidates?.[0]?.finishReason).toBe('STOP');
  });

  it('issue 20: OpenAPI-style parameters (Type.OBJECT) and mode NONE are read too', async () => {
    const declaration = { name: 'add', parameters: { type: Type.OBJECT, properties: { a: { type: Type.INTEGER, minimum: 2 } }, required: ['a'] } };
    const required = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'add',
      config: { tools: [{ functionDeclarations: [declaration] }], toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.ANY } } },
    });
    expect(required.functionCalls).toEqual([{ name: 'add', args: { a: 2 } }]);
    const none = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'call add',
      config: { tools: [{ functionDeclarations: [declaration] }], toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.NONE } } },
    });
    expect(none.functionCalls).toBeUndefined();
    expect(none.text).toMatch(/^Mock answer to: call add/);
  });

  it('issue 20: a function response turn is answered in text', async () => {
    const response = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: [
        { role: 'user', parts: [{ text: 'weather in Paris? use get_weather' }] },
        { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny' } } }] },
      ],
      config: { tools: [{ functionDeclarations: [weather] }] },
    });
    expect(response.functionCalls).toBeUndefined();
    expect(response.text).toMatch(/^Mock answer to: the tool result weather in Paris/);
  });

  it('issue 20: includeThoughts streams a thought part first and counts thoughtsTokenCount apart', async () => {
    const chunks = await streamed(
      await client().models.generateContentStream({
        model: 'gemini-2.5-flash',
        contents: 'think about it',
        config: { thinkingConfig: { thinkingBudget: 1024, includeThoughts: true } },
      }),
    );
    const first = chunks[0]?.candidates?.[0]?.content?.parts?.[0];
    expect(first).toEqual({ text: 'Mock thinking about: think about it', thought: true });
    const text = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []).filter((p) => !p.thought).map((p) => p.text ?? '').join('');
    expect(text).toMatch(/^Mock answer to: think about it/);
    const usage = chunks.at(-1)?.usageMetadata;
    expect(usage?.thoughtsTokenCount).toBeGreaterThan(0);
    expect(usage?.totalTokenCount).toBe((usage?.promptTokenCount ?? 0) + (usage?.candidatesTokenCount ?? 0) + (usage?.thoughtsTokenCount ?? 0));
    // A zero budget turns thinking off: no thought.
    const off = await client().models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { thinkingConfig: { thinkingBudget: 0, includeThoughts: true } } });
    expect(off.candidates?.[0]?.content?.parts?.some((p) => p.thought)).toBe(false);
  });

  it('issue 20: structured output answers JSON valid against responseJsonSchema or responseSchema, streamed in pieces', async () => {
    const schema = { type: 'object', properties: { title: { type: 'string' }, year: { type: 'integer', minimum: 1900 } }, required: ['title', 'year'] };
    const chunks = await streamed(
      await client().models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'a film', config: { responseMimeType: 'application/json', responseJsonSchema: schema } }),
    );
    expect(chunks.length).toBeGreaterThan(2);
    expect(JSON.parse(chunks.map((c) => c.text ?? '').join(''))).toEqual({ title: 'mock', year: 1900 });
    const openApi = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'a film',
      config: { responseMimeType: 'application/json', responseSchema: { type: Type.OBJECT, properties: { ok: { type: Type.BOOLEAN } } } },
    });
    expect(JSON.parse(openApi.text ?? '')).toEqual({ ok: true });
    const jsonOnly = await client().models.generateContent({ model: 'gemini-2.5-flash', contents: 'json please', config: { responseMimeType: 'application/json' } });
    expect(JSON.parse(jsonOnly.text ?? '')).toEqual({ answer: 'Mock answer to: json please' });
  });

  it('issue 20: inline and file images are seen', async () => {
    const response = await client().models.generateContent({
      model: 'gemini-2.5-flash',
      contents: [{ role: 'user', parts: [{ text: 'what is this' }, { inlineData: { mimeType: 'image/png', data: PNG_BASE64 } }, { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/cat.jpg' } }] }],
    });
    expect(response.text).toMatch(/^Mock answer to: \(saw 2 images\) what is this/);
  });

  it('issue 20: a response schema without responseMimeType application/json is a 400 INVALID_ARGUMENT', async () => {
    const error = await client()
      .models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { responseJsonSchema: { type: 'object' } } })
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
  });
});
