import { PROVIDERS } from '../../../shared';
import type { KeyrackModel } from '../../sdk';
import { formatPricePerMillion } from '../ui/format';

export function ModelPicker({ models, value, onChange, loading, disabled }: { models: readonly KeyrackModel[]; value: string; onChange: (id: string) => void; loading: boolean; disabled: boolean }) {
  const selected = models.find((m) => m.id === value);
  // Grouped by provider, in the registry's order.
  const groups = PROVIDERS.map((p) => ({ name: p.displayName, models: models.filter((m) => m.provider === p.id) })).filter((g) => g.models.length > 0);
  return (
    <label className="model-picker">
      <span className="sr-only">Model</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} disabled={disabled || loading || models.length === 0} data-testid="model-picker">
        {loading && <option value="">Loading models…</option>}
        {!loading && models.length === 0 && <option value="">No models available</option>}
        {groups.map((g) => (
          <optgroup key={g.name} label={g.name}>
            {g.models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.displayName}
              </option>
            ))}
          </optgroup>
        ))}
      </select>
      {selected && (
        <small className="muted price" data-testid="model-price">
          in {formatPricePerMillion(selected.inputPrice)} · out {formatPricePerMillion(selected.outputPrice)}
        </small>
      )}
    </label>
  );
}
