import type { TrafficPoint } from './TrafficHistory';

const WIDTH = 600;
const HEIGHT = 140;
const PAD = { left: 28, right: 8, top: 10, bottom: 20 };

/** Requests per second (area) and 429s (red bars) over the last minutes, as inline SVG. */
export function TrafficChart({ points }: { points: readonly TrafficPoint[] }) {
  const n = points.length;
  const max = Math.max(1, ...points.map((p) => Math.max(p.requests, p.limited)));
  const yMax = niceCeiling(max);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (n <= 1 ? 0 : (i / (n - 1)) * innerW);
  const y = (v: number) => PAD.top + innerH - (v / yMax) * innerH;
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.requests).toFixed(1)}`).join('');
  const area = n > 0 ? `${line}L${x(n - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z` : '';
  const barWidth = Math.max(1.5, innerW / Math.max(1, n) - 0.5);
  const minutes = Math.round(n / 60);
  const totalRequests = points.reduce((s, p) => s + p.requests, 0);
  const totalLimited = points.reduce((s, p) => s + p.limited, 0);

  return (
    <figure className="chart" data-testid="traffic-chart" data-requests={totalRequests} data-limited={totalLimited}>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`Requests per second and rate limits over the last ${minutes} minutes`} preserveAspectRatio="none">
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(yMax * f)} y2={y(yMax * f)} className="grid" />
            <text x={PAD.left - 6} y={y(yMax * f) + 3} className="axis" textAnchor="end">
              {formatTick(yMax * f)}
            </text>
          </g>
        ))}
        <path d={area} className="area" />
        <path d={line} className="line" />
        {points.map((p, i) =>
          p.limited > 0 ? <rect key={p.second} x={x(i) - barWidth / 2} y={y(p.limited)} width={barWidth} height={y(0) - y(p.limited)} className="bar-429" /> : null,
        )}
        {Array.from({ length: minutes + 1 }, (_, m) => (
          <text key={m} x={x(Math.min(n - 1, m * 60))} y={HEIGHT - 5} className="axis" textAnchor={m === 0 ? 'start' : m === minutes ? 'end' : 'middle'}>
            {m === minutes ? 'now' : `-${minutes - m}m`}
          </text>
        ))}
      </svg>
      <figcaption className="legend">
        <span>
          <i className="swatch swatch-requests" /> requests/s
        </span>
        <span>
          <i className="swatch swatch-429" /> 429s
        </span>
        <span className="muted">
          {totalRequests} requests · {totalLimited} rate limits in {minutes} min
        </span>
      </figcaption>
    </figure>
  );
}

function niceCeiling(v: number): number {
  const steps = [1, 2, 5, 10];
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const s of steps) if (s * magnitude >= v) return s * magnitude;
  return 10 * magnitude;
}

function formatTick(v: number): string {
  return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
}
