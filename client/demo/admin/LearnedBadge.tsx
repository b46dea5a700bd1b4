import type { KeyStatus, LearnedWindowStatus } from '../../../shared';
import { formatCount, formatSeconds } from '../ui/format';

/**
 * Issue 22: a "learned" tag when the limit in force is the one the provider states (none was
 * configured, or it corrects a higher one), with what the provider last said is left.
 */
export function LearnedBadge({ source, window, unit, now }: { source: KeyStatus['rpmSource']; window: LearnedWindowStatus | null | undefined; unit: string; now: number }) {
  if (!window) return null;
  const left = window.remaining !== null && window.resetAt !== null ? `${formatCount(window.remaining)} ${unit} left for ${formatSeconds(window.resetAt - now)}` : null;
  const stated = window.limit !== null ? `provider states ${formatCount(window.limit)} ${unit}/min` : 'provider states no limit';
  return (
    <span className="tag tag-learned" data-testid={`learned-${unit}`} data-source={source ?? 'configured'} title={[stated, left].filter(Boolean).join('; ')}>
      {source === 'learned' ? 'learned' : 'stated'}
      {left && <span className="muted"> · {formatCount(window.remaining!)} left</span>}
    </span>
  );
}
