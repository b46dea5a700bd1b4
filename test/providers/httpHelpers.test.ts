import { describe, expect, it } from 'vitest';
import { parseGoDuration, parseProtoDuration, retryAfterFromStandardHeaders } from '../../server/providers/http/retryAfter';
import { scrubSecrets } from '../../server/providers/http/scrubSecrets';
import { baseUrlFor, PROVIDER_SPECS } from '../../server/providers/registry';
import { PROVIDER_IDS } from '../../shared';

describe('retry-after dialects', () => {
  it('parses Go durations', () => {
    expect(parseGoDuration('6m0s')).toBe(360_000);
    expect(parseGoDuration('1m30.5s')).toBe(90_500);
    expect(parseGoDuration('20ms')).toBe(20);
    expect(parseGoDuration('1h2m')).toBe(3_720_000);
    // Go's micro sign (U+00B5) and the Greek mu (U+03BC) it also accepts.
    expect(parseGoDuration('1500\u00b5s')).toBe(2);
    expect(parseGoDuration('1500\u03bcs')).toBe(2);
    expect(parseGoDuration('soon')).toBeUndefined();
    expect(parseGoDuration('')).toBeUndefined();
  });
  it('parses protobuf durations and retry-after headers', () => {
    expect(parseProtoDuration('7s')).toBe(7000);
    expect(parseProtoDuration('0.25s')).toBe(250);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterFromStandardHeaders(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterFromStandardHeaders(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterFromStandardHeaders(new Headers({ 'retry-after': 'Tue, 31 Dec 2024 00:00:05 GMT' }), now)).toBe(0);
    expect(retryAfterFromStandardHeaders(new Headers({ 'retry-after': 'garbage' }), now)).toBeUndefined();
  });
});

describe('scrubSecrets', () => {
  it('removes the key, its fragments and other key shapes', () => {
    const key = 'sk-proj-' + 'test-ABCDEFGH12345678wxyz';
    const out = scrubSecrets(`bad key ${key}, shown as sk-proj-****wxyz and ${key.slice(-8)}; also AIzaSyTEST1234567890abcd and gsk_TESTabcdef123456`, key);
    expect(out).not.toContain(key);
    expect(out).not.toContain(key.slice(-8));
    expect(out).not.toContain('AIzaSyTEST');
    expect(out).not.toContain('gsk_TEST');
    expect(out).toContain('bad key');
  });
});

describe('registry', () => {
  it('has a spec for every provider, and base URLs as the official SDKs take them', () => {
    for (const id of PROVIDER_IDS) expect(PROVIDER_SPECS[id].id).toBe(id);
    expect(baseUrlFor('openai')).toBe('https://api.openai.com/v1');
    expect(baseUrlFor('perplexity')).toBe('https://api.perplexity.ai');
    expect(baseUrlFor('deepseek')).toBe('https://api.deepseek.com');
    expect(baseUrlFor('anthropic', { anthropic: 'http://127.0.0.1:4010/anthropic/' })).toBe('http://127.0.0.1:4010/anthropic');
  });
});
