import { describe, expect, it } from 'vitest';
import { decideToolCalls, mockValueFor, planAnswer, type MockChatInput } from '../../server/mock-provider/mockAnswer';

const weather = { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1 } }, required: ['city'] } };
const time = { name: 'get_time', parameters: { type: 'object', properties: {} } };
const base: MockChatInput = { model: 'm', stream: false, includeUsage: false, maxTokens: undefined, lastUserText: 'what is the weather in Paris', promptChars: 10 };

describe('mock provider: tool calls plan (issue 20)', () => {
  it('calls, deterministically: the named function, the first for required, those the user names for auto, none after a tool result', () => {
    expect(decideToolCalls({ ...base, tools: [weather, time], toolChoice: { name: 'get_time' } }, 1).map((c) => c.name)).toEqual(['get_time']);
    expect(decideToolCalls({ ...base, tools: [time, weather], toolChoice: 'required' }, 1).map((c) => c.name)).toEqual(['get_time']);
    expect(decideToolCalls({ ...base, lastUserText: 'call get_time and get_weather', tools: [weather, time] }, 1).map((c) => c.name)).toEqual(['get_weather', 'get_time']);
    expect(decideToolCalls({ ...base, lastUserText: 'call get_time and get_weather', tools: [weather, time], parallelToolCalls: false }, 1)).toHaveLength(1);
    expect(decideToolCalls({ ...base, tools: [weather], toolChoice: 'required', lastIsToolResult: true }, 1)).toEqual([]);
    expect(decideToolCalls({ ...base, tools: [weather], toolChoice: 'none' }, 1)).toEqual([]);
    expect(decideToolCalls({ ...base, lastUserText: 'hello', tools: [weather] }, 1)).toEqual([]);
  });

  it('builds arguments that satisfy the tool schema', () => {
    const [call] = decideToolCalls({ ...base, tools: [weather], toolChoice: 'required' }, 7);
    expect(call).toMatchObject({ id: 'call_mock7_0', name: 'get_weather' });
    expect(JSON.parse(call!.arguments)).toEqual({ city: 'mock', unit: 'celsius', days: 1 });
    expect(mockValueFor({ type: 'array', items: { type: 'number' }, minItems: 2 })).toEqual([1, 1]);
    expect(mockValueFor({ anyOf: [{ type: 'boolean' }, { type: 'string' }] })).toBe(true);
  });

  it('plans an answer with calls and no text, structured output as JSON pieces, a thought when thinking, and plain answers as before', () => {
    const calls = planAnswer({ ...base, tools: [weather], toolChoice: 'required' }, undefined, 1, 0);
    expect(calls.text).toBe('');
    expect(calls.toolCalls).toHaveLength(1);
    const json = planAnswer({ ...base, responseFormat: { type: 'json_schema', schema: weather.parameters } }, undefined, 1, 0);
    expect(JSON.parse(json.text)).toEqual({ city: 'mock', unit: 'celsius', days: 1 });
    expect(json.chunks.length).toBeGreaterThan(1);
    expect(planAnswer({ ...base, thinking: true }, undefined, 1, 0).reasoning).toMatch(/^Mock thinking about: what is/);
    const plain = planAnswer(base, undefined, 1, 0);
    expect(plain.text).toMatch(/^Mock answer to: what is the weather in Paris/);
    expect(plain).toMatchObject({ toolCalls: [], reasoning: null });
    expect(planAnswer({ ...base, imageCount: 2 }, undefined, 1, 0).text).toMatch(/^Mock answer to: \(saw 2 images\)/);
  });
});
