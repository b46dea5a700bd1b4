/**
 * The benchmark's one table: each row a figure for Keyrack, the baselines it was measured
 * against in the same run, the target from issue #8 and whether it was met.
 */
export interface BenchRow {
  /** Which of the six measurements (1-6). */
  section: number;
  measure: string;
  keyrack: string;
  baseline: string;
  target: string;
  /** null: no target for this row (context only), or it could not be measured. */
  met: boolean | null;
}

export class BenchReport {
  readonly rows: BenchRow[] = [];
  readonly errors: { section: string; message: string }[] = [];

  add(row: BenchRow): void {
    this.rows.push(row);
  }

  /** A section that could not run still gets a row, so the table says what is missing. */
  fail(section: number, name: string, error: unknown): void {
    const message = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 200) : String(error);
    this.errors.push({ section: name, message });
    this.rows.push({ section, measure: `${name}: not measured`, keyrack: `error: ${message}`, baseline: '', target: '', met: false });
  }

  get missed(): number {
    return this.rows.filter((r) => r.met === false).length;
  }

  markdownTable(): string {
    const header = ['#', 'Measure', 'Keyrack', 'Baselines (same run)', 'Target', 'Result'];
    const lines = [row(header), row(header.map(() => '---'))];
    for (const r of [...this.rows].sort((a, b) => a.section - b.section)) {
      lines.push(row([String(r.section), r.measure, r.keyrack, r.baseline, r.target, verdict(r.met)]));
    }
    return lines.join('\n');
  }

  /** The same table for a terminal: aligned columns, no markdown escaping. */
  textTable(): string {
    const header = ['#', 'Measure', 'Keyrack', 'Baselines (same run)', 'Target', 'Result'];
    const body = [...this.rows]
      .sort((a, b) => a.section - b.section)
      .map((r) => [String(r.section), r.measure, r.keyrack, r.baseline, r.target, verdict(r.met)]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ').trimEnd();
    return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...body.map(line)].join('\n');
  }
}

function verdict(met: boolean | null): string {
  return met === null ? '-' : met ? 'met' : 'MISSED';
}

function row(cells: string[]): string {
  return `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return `${value.toFixed(Math.abs(value) < 10 ? 2 : 1)} ms`;
}

export function perSecond(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value >= 10_000 ? `${Math.round(value).toLocaleString('en-US')}/s` : `${value.toFixed(0)}/s`;
}

export function percent(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : 'n/a';
}

export function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : 'n/a';
}

export function kib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : 'n/a';
}
