import type { ProviderPoolStatus } from '../../../shared';

/**
 * Issue 22: a pool's fair share (the most active users of the window, their use against their
 * weighted share) and its wait queue. Renders nothing for a pool with neither.
 */
export function PoolFairness({ p }: { p: ProviderPoolStatus }) {
  const users = p.users ?? [];
  if (users.length === 0 && !p.queue) return null;
  return (
    <div className="pool-fairness" data-testid={`fairness-${p.provider}`}>
      {p.queue && (
        <p className="muted small">
          Queue: {p.queue.length} waiting (max {p.queue.maxLength}, up to {p.queue.maxWaitMs} ms)
          {p.queue.length > 0 && `, oldest ${Math.round(p.queue.oldestWaitMs)} ms`}
        </p>
      )}
      {users.length > 0 && (
        <table className="keys">
          <thead>
            <tr>
              <th>User</th>
              <th>Weight</th>
              <th>Requests this window</th>
              <th>Fair share / min</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.userId}>
                <td>{u.userId}</td>
                <td>{u.weight}</td>
                <td>{u.requestsThisWindow}</td>
                <td>{u.shareRpm}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
