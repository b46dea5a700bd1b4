import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelledCounter, LabelledHistogram } from './labelledMetrics';

/**
 * Keyrack's Prometheus metrics. Labels are bounded sets (provider ids, catalog model ids,
 * outcome kinds): never a user id, a key, a key fingerprint or free text, so no secret and
 * no unbounded cardinality can reach a scrape.
 *
 * What every request updates is a LabelledCounter / LabelledHistogram (labelledMetrics.ts: no
 * label hashing per call); gauges set now and then stay prom-client's, and the open-streams
 * gauge is read at scrape time rather than set on every request's start and end.
 */
export interface GatewayMetrics {
  registry: Registry;
  requests: LabelledCounter<'provider' | 'model' | 'status'>;
  upstreamLatency: LabelledHistogram<'provider' | 'outcome'>;
  timeToFirstToken: LabelledHistogram<'provider'>;
  retries: LabelledCounter<'provider' | 'reason'>;
  cooldowns: LabelledCounter<'provider' | 'kind'>;
  disabledKeys: Gauge<'provider'>;
  coolingKeys: Gauge<'provider'>;
  tokens: LabelledCounter<'provider' | 'model' | 'direction'>;
  costUsd: LabelledCounter<'provider' | 'model'>;
  /** Answers in flight; the latest count is what a scrape reports. */
  openStreams: { set(count: number): void };
  /** Usage records (user-days) not yet in the store of record: read from `pending` at scrape time. */
  usageOutbox: { readFrom(pending: () => number): void };
  storeLatency: LabelledHistogram<'operation'>;
  /** Issue 22: requests waiting for a key, across instances (set when the pool gauges refresh, at scrape). */
  queueLength: Gauge<'provider'>;
  /** Issue 22: how long a request waited for a key, by how the wait ended. */
  queueWait: LabelledHistogram<'provider' | 'outcome'>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(options: { collectDefaults?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.collectDefaults ?? true) collectDefaultMetrics({ register: registry, prefix: 'keyrack_process_' });
  const registers = [registry];
  let openStreams = 0;
  new Gauge({
    name: 'keyrack_open_streams',
    help: 'Chat streams in flight',
    registers,
    collect() {
      this.set(openStreams);
    },
  });
  let usagePending = (): number => 0;
  new Gauge({
    name: 'keyrack_usage_outbox_entries',
    help: 'Usage records (user-days) waiting for the store of record (Redis or PostgreSQL): grows while it is away',
    registers,
    collect() {
      this.set(usagePending());
    },
  });
  return {
    registry,
    requests: new LabelledCounter({
      name: 'keyrack_requests_total',
      help: 'Chat requests by provider, model and final status',
      labelNames: ['provider', 'model', 'status'],
      registers,
    }),
    upstreamLatency: new LabelledHistogram({
      name: 'keyrack_upstream_latency_seconds',
      help: 'Duration of one upstream attempt, by outcome',
      labelNames: ['provider', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    timeToFirstToken: new LabelledHistogram({
      name: 'keyrack_time_to_first_token_seconds',
      help: 'From request to the first text delta sent to the client',
      labelNames: ['provider'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    retries: new LabelledCounter({
      name: 'keyrack_retries_total',
      help: 'Attempts retried on another key or model, by the reason of the failed attempt',
      labelNames: ['provider', 'reason'],
      registers,
    }),
    cooldowns: new LabelledCounter({
      name: 'keyrack_key_cooldowns_total',
      help: 'Keys put out of rotation: rate_limited, quota_exhausted, rejected',
      labelNames: ['provider', 'kind'],
      registers,
    }),
    disabledKeys: new Gauge({
      name: 'keyrack_keys_disabled',
      help: 'Keys currently disabled (rejected by the provider or by an admin)',
      labelNames: ['provider'],
      registers,
    }),
    coolingKeys: new Gauge({
      name: 'keyrack_keys_cooling',
      help: 'Keys currently cooling down',
      labelNames: ['provider'],
      registers,
    }),
    tokens: new LabelledCounter({
      name: 'keyrack_tokens_total',
      help: 'Tokens reported by providers',
      labelNames: ['provider', 'model', 'direction'],
      registers,
    }),
    costUsd: new LabelledCounter({
      name: 'keyrack_cost_usd_total',
      help: 'Cost charged to users, including markup, in US dollars',
      labelNames: ['provider', 'model'],
      registers,
    }),
    openStreams: {
      set: (count) => {
        openStreams = count;
      },
    },
    usageOutbox: {
      readFrom: (pending) => {
        usagePending = pending;
      },
    },
    queueLength: new Gauge({
      name: 'keyrack_pool_queue_length',
      help: 'Requests waiting for a key in the pool queue (shared by every instance)',
      labelNames: ['provider'],
      registers,
    }),
    queueWait: new LabelledHistogram({
      name: 'keyrack_pool_queue_wait_seconds',
      help: 'Time a request waited in the pool queue, by outcome: served, timeout, aborted, no_keys',
      labelNames: ['provider', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    storeLatency: new LabelledHistogram({
      name: 'keyrack_store_latency_seconds',
      help: 'Latency of state store operations',
      labelNames: ['operation'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    }),
  };
}
