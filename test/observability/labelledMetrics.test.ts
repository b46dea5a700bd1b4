import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabelledCounter, LabelledHistogram } from '../../server/observability/labelledMetrics';

const BUCKETS = [0.005, 0.01, 0.1, 1];

/** The same observations into prom-client's own metrics and into ours, each in its own registry. */
function both() {
  const theirs = new Registry();
  const ours = new Registry();
  return {
    theirs,
    ours,
    counters: [
      new Counter({ name: 'c_total', help: 'a counter', labelNames: ['provider', 'model'], registers: [theirs] }),
      new LabelledCounter({ name: 'c_total', help: 'a counter', labelNames: ['provider', 'model'], registers: [ours] }),
    ] as const,
    histograms: [
      new Histogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['provider', 'outcome'], buckets: BUCKETS, registers: [theirs] }),
      new LabelledHistogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['provider', 'outcome'], buckets: BUCKETS, registers: [ours] }),
    ] as const,
  };
}

describe('LabelledCounter and LabelledHistogram', () => {
  it('expose exactly what prom-client exposes for the same observations', async () => {
    const { theirs, ours, counters, histograms } = both();
    for (const counter of counters) {
      counter.inc({ provider: 'openai', model: 'gpt-4o' });
      counter.inc({ provider: 'openai', model: 'gpt-4o' }, 2.5);
      counter.inc({ provider: 'anthropic', model: 'claude-haiku' }, 7);
      counter.inc({ provider: 'openai', model: 'gpt-4o-mini' }, 0);
    }
    // Edges: on a bound (counted in it), between bounds, above all of them, zero.
    for (const histogram of histograms) {
      for (const value of [0.005, 0.007, 0.5, 3, 0]) histogram.observe({ provider: 'openai', outcome: 'success' }, value);
      histogram.observe({ provider: 'openai', outcome: 'rate_limited' }, 0.02);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // Keyrack records no exemplars: prom-client's JSON says `exemplar: null` for each bucket.
    const withoutExemplars = (json: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      json.map((metric) => ({
        ...metric,
        values: metric.values.map((value) => Object.fromEntries(Object.entries(value).filter(([field]) => field !== 'exemplar'))),
      }));
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('keep one series per label set, whatever object the labels come in', async () => {
    const registry = new Registry();
    const counter = new LabelledCounter({ name: 'x_total', help: 'x', labelNames: ['a', 'b'], registers: [registry] });
    const labels = { a: '1', b: '2' };
    counter.inc(labels);
    labels.b = '3'; // the caller's object changes after the series was made
    counter.inc(labels);
    counter.inc({ b: '2', a: '1' });
    const text = await registry.metrics();
    expect(text).toContain('x_total{a="1",b="2"} 2');
    expect(text).toContain('x_total{a="1",b="3"} 1');
  });

  it('refuse what prom-client refuses, changing nothing', async () => {
    const registry = new Registry();
    const counter = new LabelledCounter({ name: 'y_total', help: 'y', labelNames: ['a'], registers: [registry] });
    const histogram = new LabelledHistogram({ name: 'y_seconds', help: 'y', labelNames: ['a'], buckets: BUCKETS, registers: [registry] });
    expect(() => counter.inc({ a: '1' }, -1)).toThrow(RangeError);
    expect(() => counter.inc({ a: '1' }, Number.NaN)).toThrow(RangeError);
    expect(() => counter.inc({ a: '1' }, Infinity)).toThrow(RangeError);
    expect(() => histogram.observe({ a: '1' }, Number.NaN)).toThrow(RangeError);
    const json = await registry.getMetricsAsJSON();
    expect(json.flatMap((m) => m.values)).toEqual([]);
    expect(() => new LabelledCounter({ name: 'y_total', help: 'again', labelNames: ['a'], registers: [registry] })).toThrow(/already been registered/);
  });

  it('start over on reset, as Registry.resetMetrics asks', async () => {
    const registry = new Registry();
    const counter = new LabelledCounter({ name: 'z_total', help: 'z', labelNames: ['a'], registers: [registry] });
    counter.inc({ a: '1' }, 5);
    registry.resetMetrics();
    counter.inc({ a: '1' });
    expect(await registry.metrics()).toContain('z_total{a="1"} 1');
  });
});
