import type { Metric, Registry } from 'prom-client';

/**
 * Counters and histograms for the request path, exposed through prom-client's Registry.
 *
 * prom-client's own build a label-hash string and validate the label object on every call; a
 * non-streaming /v1 request makes seven such calls, and taking them out raised the gateway's
 * throughput by about a tenth in the issue #8 benchmark. Here a series is found by one Map
 * lookup per label value, in the order of `labelNames` (the values are a few provider, model and
 * outcome strings, whose hashes V8 keeps on the strings), and the exposition is built only when
 * the registry is scraped, in prom-client's own format.
 *
 * Label values must come from bounded sets (see metrics.ts): every distinct combination is kept.
 */
abstract class LabelledMetric<L extends string, S> {
  /** Nested Maps, one level per label; the last level holds the series' state. */
  private readonly root = new Map<unknown, unknown>();
  private readonly series: { labels: Readonly<Record<L, string>>; state: S }[] = [];

  constructor(
    /** Not readonly: the registry renames counters in OpenMetrics mode. */
    public name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    registers: readonly Registry[],
  ) {
    if (labelNames.length === 0) throw new Error(`${name}: a labelled metric needs at least one label`);
    // The registry asks nothing of a metric but name, get() and reset() (prom-client 15's
    // registry.js); this class is not one of prom-client's own, hence the cast.
    for (const registry of registers) registry.registerMetric(this as unknown as Metric);
  }

  protected abstract createState(): S;

  protected seriesFor(labels: Readonly<Record<L, string>>): S {
    const names = this.labelNames;
    const last = names.length - 1;
    let node = this.root;
    for (let i = 0; i < last; i += 1) {
      const value = labels[names[i]!];
      let next = node.get(value) as Map<unknown, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    const leaf = labels[names[last]!];
    let state = node.get(leaf) as S | undefined;
    if (state === undefined) {
      state = this.createState();
      node.set(leaf, state);
      // A copy of the labels: the caller's object is often reused or changed.
      const copy = {} as Record<L, string>;
      for (const name of names) copy[name] = String(labels[name]);
      this.series.push({ labels: copy, state });
    }
    return state;
  }

  protected eachSeries(): readonly { labels: Readonly<Record<L, string>>; state: S }[] {
    return this.series;
  }

  /** Forgets every series (prom-client's Registry.resetMetrics). */
  reset(): void {
    this.root.clear();
    this.series.length = 0;
  }
}

interface CounterState {
  value: number;
}

/** A monotonic counter per label set. */
export class LabelledCounter<L extends string> extends LabelledMetric<L, CounterState> {
  constructor(options: { name: string; help: string; labelNames: readonly L[]; registers: readonly Registry[] }) {
    super(options.name, options.help, options.labelNames, options.registers);
  }

  inc(labels: Readonly<Record<L, string>>, by = 1): void {
    if (!(by >= 0) || by === Infinity) throw new RangeError(`${this.name}: a counter only goes up by a finite amount (got ${by})`);
    this.seriesFor(labels).value += by;
  }

  protected createState(): CounterState {
    return { value: 0 };
  }

  get() {
    return {
      name: this.name,
      help: this.help,
      type: 'counter',
      aggregator: 'sum',
      values: this.eachSeries().map(({ labels, state }) => ({ labels, value: state.value })),
    };
  }
}

interface HistogramState {
  /** Observations per bucket, not cumulative; the last slot is above every bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram per label set, with fixed upper bounds (seconds, for latencies). */
export class LabelledHistogram<L extends string> extends LabelledMetric<L, HistogramState> {
  private readonly bounds: readonly number[];

  constructor(options: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registers: readonly Registry[] }) {
    super(options.name, options.help, options.labelNames, options.registers);
    this.bounds = [...options.buckets].sort((a, b) => a - b);
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    if (!Number.isFinite(value)) throw new RangeError(`${this.name}: not a finite value: ${value}`);
    const state = this.seriesFor(labels);
    const bounds = this.bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket += 1;
    state.counts[bucket]! += 1;
    state.sum += value;
    state.count += 1;
  }

  protected createState(): HistogramState {
    return { counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
  }

  /** What the registry's text exposition reads: prom-client's Histogram layout, `le` first, then the series' labels. */
  getForPromString() {
    return this.snapshot(false);
  }

  /** The same with each value's labels in one object (Registry.getMetricsAsJSON). */
  get() {
    return this.snapshot(true);
  }

  private snapshot(merged: boolean) {
    const values: { labels: Record<string, string | number>; sharedLabels?: Record<string, string>; value: number; metricName: string }[] = [];
    const value = (labels: Record<string, string | number>, shared: Readonly<Record<string, string>>, v: number, metricName: string) =>
      values.push(merged ? { labels: { ...labels, ...shared }, value: v, metricName } : { labels, sharedLabels: shared, value: v, metricName });
    const bucketName = `${this.name}_bucket`;
    for (const { labels, state } of this.eachSeries()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += state.counts[i]!;
        value({ le: bound }, labels, cumulative, bucketName);
      });
      value({ le: '+Inf' }, labels, state.count, bucketName);
      value({}, labels, state.sum, `${this.name}_sum`);
      value({}, labels, state.count, `${this.name}_count`);
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }
}
