import { useEffect, useMemo, useState } from 'react';
import { PROVIDERS, type PoolStatus, type ProviderPoolStatus } from '../../../shared';
import { usePoolStatus } from '../../sdk';
import { formatCount } from '../ui/format';
import { useNow } from '../ui/useNow';
import { KeyRow } from './KeyRow';
import { PoolFairness } from './PoolFairness';
import { TrafficChart } from './TrafficChart';
import { TrafficHistory } from './TrafficHistory';

const DISPLAY_NAME = new Map<string, string>(PROVIDERS.map((p) => [p.id, p.displayName]));

export function AdminPage() {
  const [history] = useState(() => new TrafficHistory(180));
  const pool = usePoolStatus();
  const now = useNow(1000);
  // Redrawn every second (the chart scrolls) and on every snapshot.
  const points = useMemo(() => history.series(Math.max(now, pool.status?.at ?? 0)), [history, now, pool.status]);
  const [pending, setPending] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  // Every pushed snapshot is a new object: feed each to the history once.
  useEffect(() => {
    if (pool.status) history.add(pool.status);
  }, [history, pool.status]);

  async function toggle(provider: ProviderPoolStatus['provider'], fingerprint: string, enabled: boolean) {
    setPending(fingerprint);
    setActionError(null);
    try {
      await pool.setKeyEnabled({ provider, fingerprint, enabled });
    } catch (e) {
      setActionError(e instanceof Error ? e.message : String(e));
    } finally {
      setPending(null);
    }
  }

  const status = pool.status;
  const configured = status?.providers.filter((p) => p.keys.length > 0) ?? [];
  const unconfigured = status?.providers.filter((p) => p.keys.length === 0) ?? [];

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Key pool</h1>
          <p className="muted">Live from the gateway; updates as keys are used, cool down and come back.</p>
        </div>
        <LiveBadge connected={pool.live} />
      </header>

      {pool.error && (
        <p className="alert alert-error" role="alert" data-testid="pool-error">
          {pool.error.message}
        </p>
      )}
      {actionError && (
        <p className="alert alert-error" role="alert">
          {actionError}
        </p>
      )}

      {status && <Summary status={status} />}

      <section className="card">
        <div className="card-head">
          <h2>Traffic</h2>
          <small className="muted">last 3 minutes</small>
        </div>
        <TrafficChart points={points} />
      </section>

      {!status && !pool.error && <div className="card skeleton" aria-busy="true" data-testid="pool-loading" />}

      {configured.map((p) => (
        <section key={p.provider} className="card provider-card" data-testid={`pool-provider-${p.provider}`}>
          <div className="card-head">
            <div>
              <h2>{DISPLAY_NAME.get(p.provider) ?? p.provider}</h2>
              <small className="muted">{p.strategy}</small>
            </div>
            <div className="totals">
              <span className="total-chip ok">{p.totals.ok} ok</span>
              {p.totals.cooling > 0 && <span className="total-chip cooling">{p.totals.cooling} cooling</span>}
              {p.totals.disabled > 0 && <span className="total-chip disabled">{p.totals.disabled} disabled</span>}
              <span className="total-chip">{formatCount(p.totals.requestsThisWindow)} req/min</span>
              <span className="total-chip" title="Requests per minute the usable keys can still take">
                capacity {unlimited(p) ? '∞' : `${formatCount(p.totals.capacityRpm)} rpm`}
              </span>
            </div>
          </div>
          <table className="keys">
            <thead>
              <tr>
                <th>Key</th>
                <th>Status</th>
                <th>Requests this minute</th>
                <th>Tokens</th>
                <th aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {p.keys.map((k) => (
                <KeyRow key={k.fingerprint} k={k} now={now} pending={pending === k.fingerprint} onToggle={(enabled) => void toggle(p.provider, k.fingerprint, enabled)} />
              ))}
            </tbody>
          </table>
          <PoolFairness p={p} />
        </section>
      ))}

      {unconfigured.length > 0 && (
        <p className="muted small unconfigured">Not configured: {unconfigured.map((p) => DISPLAY_NAME.get(p.provider) ?? p.provider).join(', ')}.</p>
      )}
    </div>
  );
}

/** Keys without a published RPM limit (DeepSeek) have no capacity figure: they are unlimited. */
function unlimited(p: ProviderPoolStatus): boolean {
  return p.keys.length > 0 && p.keys.every((k) => k.rpmLimit === 0) && p.totals.ok > 0;
}

function Summary({ status }: { status: PoolStatus }) {
  const keys = status.providers.flatMap((p) => p.keys);
  const sum = (f: (p: ProviderPoolStatus) => number) => status.providers.reduce((s, p) => s + f(p), 0);
  const stats = [
    { label: 'Keys', value: keys.length, testid: 'summary-keys' },
    { label: 'Healthy', value: sum((p) => p.totals.ok), testid: 'summary-ok' },
    { label: 'Cooling', value: sum((p) => p.totals.cooling), testid: 'summary-cooling' },
    { label: 'Requests / min', value: sum((p) => p.totals.requestsThisWindow), testid: 'summary-requests' },
    { label: 'Capacity / min', value: sum((p) => p.totals.capacityRpm), testid: 'summary-capacity' },
  ];
  return (
    <section className="stats">
      {stats.map((s) => (
        <div key={s.label} className="stat" data-testid={s.testid}>
          <small>{s.label}</small>
          <strong>{formatCount(s.value)}</strong>
        </div>
      ))}
    </section>
  );
}

function LiveBadge({ connected }: { connected: boolean }) {
  return (
    <span className={connected ? 'live live-on' : 'live'} data-testid="pool-live">
      <i /> {connected ? 'Live' : 'Connecting…'}
    </span>
  );
}
