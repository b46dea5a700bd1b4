import { useEffect, useState } from 'react';
import type { TrafficPoint } from './TrafficHistory';

const HEIGHT = 150;
const PAD = { left: 30, right: 6, top: 10, bottom: 20 };

/** Requests per second (indigo bars) and 429s (red bars) over the last minutes, as inline SVG. */
export function TrafficChart({ points }: { points: readonly TrafficPoint[] }) {
  const width = useWidth();
  const n = points.length;
  const max = Math.max(1, ...points.map((p) => Math.max(p.requests, p.limited)));
  const yMax = niceCeiling(max);
  const innerW = Math.max(1, width.value - PAD.left - PAD.right);
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const step = innerW / Math.max(1, n);
  const barW = Math.max(1, step - (step > 3 ? 1 : 0));
  const x = (i: number) => PAD.left + i * step;
  const y = (v: number) => PAD.top + innerH - (v / yMax) * innerH;
  const minutes = Math.round(n / 60);
  const totalRequests = points.reduce((s, p) => s + p.requests, 0);
  const totalLimited = points.reduce((s, p) => s + p.limited, 0);

  return (
    <figure className="chart" data-testid="traffic-chart" data-requests={totalRequests} data-limited={totalLimited}>
      <div ref={width.ref} className="chart-box">
        <svg width={width.value} height={HEIGHT} role="img" aria-label={`Requests per second and rate limits over the last ${minutes} minutes`}>
          {[0, 0.5, 1].map((f) => (
            <g key={f}>
              <line x1={PAD.left} x2={width.value - PAD.right} y1={y(yMax * f)} y2={y(yMax * f)} className="grid" />
              <text x={PAD.left - 6} y={y(yMax * f) + 3} className="axis" textAnchor="end">
                {formatTick(yMax * f)}
              </text>
            </g>
          ))}
          {points.map((p, i) =>
            p.requests > 0 ? <rect key={`r${p.second}`} x={x(i)} y={y(p.requests)} width={barW} height={y(0) - y(p.requests)} rx={Math.min(1.5, barW / 2)} className="bar-requests" /> : null,
          )}
          {points.map((p, i) =>
            p.limited > 0 ? <rect key={`l${p.second}`} x={x(i)} y={y(p.limited)} width={barW} height={y(0) - y(p.limited)} rx={Math.min(1.5, barW / 2)} className="bar-429" /> : null,
          )}
          {Array.from({ length: minutes + 1 }, (_, m) => (
            <text key={m} x={m === minutes ? width.value - PAD.right : x(m * 60)} y={HEIGHT - 5} className="axis" textAnchor={m === 0 ? 'start' : m === minutes ? 'end' : 'middle'}>
              {m === minutes ? 'now' : `-${minutes - m} min`}
            </text>
          ))}
        </svg>
      </div>
      <figcaption className="legend">
        <span>
          <i className="swatch swatch-requests" /> requests per second
        </span>
        <span>
          <i className="swatch swatch-429" /> rate limits (429)
        </span>
        <span className="muted legend-total">
          {totalRequests} requests · {totalLimited} rate limits in {minutes} min
        </span>
      </figcaption>
    </figure>
  );
}

/** The element's width in CSS pixels, so text and bars are drawn at their real size. */
function useWidth(): { ref: (el: HTMLDivElement | null) => void; value: number } {
  const [element, setElement] = useState<HTMLDivElement | null>(null);
  const [value, setValue] = useState(600);
  useEffect(() => {
    if (!element) return;
    setValue(element.clientWidth || 600);
    const observer = new ResizeObserver(([entry]) => setValue(Math.round(entry?.contentRect.width ?? 600) || 600));
    observer.observe(element);
    return () => observer.disconnect();
  }, [element]);
  return { ref: setElement, value };
}

function niceCeiling(v: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const s of [1, 2, 5, 10]) if (s * magnitude >= v) return s * magnitude;
  return 10 * magnitude;
}

function formatTick(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
