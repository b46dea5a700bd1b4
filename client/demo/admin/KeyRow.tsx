import type { KeyReason, KeyStatus } from '../../../shared';
import { formatCount, formatSeconds } from '../ui/format';
import { LearnedBadge } from './LearnedBadge';

const REASONS: Record<KeyReason, string> = {
  rate_limited: 'rate limited',
  quota_exhausted: 'quota exhausted',
  rejected: 'rejected by provider',
  admin_disabled: 'disabled by an admin',
};

export function KeyRow({ k, now, pending, onToggle }: { k: KeyStatus; now: number; pending: boolean; onToggle: (enabled: boolean) => void }) {
  const limited = k.rpmLimit > 0;
  const share = limited ? Math.min(100, (k.requestsThisWindow / k.rpmLimit) * 100) : 0;
  const adminDisabled = k.status === 'disabled' && k.reason === 'admin_disabled';
  return (
    <tr className={`key-row key-${k.status}`} data-testid={`key-row-${k.fingerprint}`} data-status={k.status}>
      <td data-label="Key">
        <code className="mask" data-testid="key-mask">
          {k.mask}
        </code>
        {k.account && <small className="muted account">account {k.account}</small>}
      </td>
      <td data-label="Status">
        <StatusPill k={k} now={now} />
      </td>
      <td data-label="Requests / min" className="usage-cell">
        <div className="meter" aria-hidden="true">
          <span style={{ width: `${share}%` }} className={share >= 90 ? 'hot' : share >= 60 ? 'warm' : ''} />
        </div>
        <small data-testid="key-requests" data-count={k.requestsThisWindow}>
          {formatCount(k.requestsThisWindow)} / {limited ? formatCount(k.rpmLimit) : '∞'}
        </small>{' '}
        <LearnedBadge source={k.rpmSource} window={k.learned?.requests} unit="requests" now={now} />
      </td>
      <td data-label="Tokens / min">
        <small>
          {formatCount(k.tokensThisWindow)}
          {k.tpmLimit > 0 && <span className="muted"> / {formatCount(k.tpmLimit)}</span>}
        </small>{' '}
        <LearnedBadge source={k.tpmSource} window={k.learned?.tokens} unit="tokens" now={now} />
      </td>
      <td className="actions">
        {k.status === 'disabled' && !adminDisabled ? (
          <button className="btn btn-sm btn-secondary" disabled={pending} onClick={() => onToggle(true)} data-testid="key-enable">
            Re-enable
          </button>
        ) : adminDisabled ? (
          <button className="btn btn-sm btn-secondary" disabled={pending} onClick={() => onToggle(true)} data-testid="key-enable">
            Enable
          </button>
        ) : (
          <button className="btn btn-sm btn-ghost-danger" disabled={pending} onClick={() => onToggle(false)} data-testid="key-disable">
            Disable
          </button>
        )}
      </td>
    </tr>
  );
}

function StatusPill({ k, now }: { k: KeyStatus; now: number }) {
  if (k.status === 'ok') return <span className="pill pill-ok" data-testid="key-status">ok</span>;
  if (k.status === 'cooling') {
    const left = k.until === null ? null : k.until - now;
    return (
      <span className="pill pill-cooling" data-testid="key-status" title={k.reason ? REASONS[k.reason] : undefined}>
        cooling{left !== null && <span className="countdown"> {formatSeconds(left)}</span>}
      </span>
    );
  }
  return (
    <span className="pill pill-disabled" data-testid="key-status">
      disabled<span className="reason"> · {k.reason ? REASONS[k.reason] : 'unknown'}</span>
    </span>
  );
}
