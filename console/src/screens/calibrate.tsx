import { useState, type FormEvent } from 'react';
import type { CalibrateThresholdsMutation as CalibrationResult } from '../generated/graphql.ts';
import { CalibrateThresholdsMutation } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { percent } from '../ui/format.ts';

type Proposal = CalibrationResult['calibrateThresholds'];
type Settings = { target: { maxF1: true } | { precision: number }; minPositives: number };

const REASONS: Record<string, string> = {
  'few-positives': 'too few “yes” answers',
  'precision-unreachable': 'no threshold reaches the precision',
  unchanged: 'already at its best threshold',
};

/**
 * Learns thresholds from the vocabulary's feedback: a dry run shows what would change and the
 * precision / recall expected on the feedback; "Apply" sends the same settings without dryRun.
 */
export function Calibrate({ vocabularyId, onApplied }: { vocabularyId: string; onApplied: () => void }) {
  const { call } = useSession();
  const [kind, setKind] = useState<'maxF1' | 'precision'>('maxF1');
  const [precision, setPrecision] = useState('0.9');
  const [minPositives, setMinPositives] = useState('10');
  // The settings the shown proposal was made with: "Apply" applies exactly that.
  const [proposal, setProposal] = useState<{ settings: Settings; result: Proposal } | null>(null);
  const [applied, setApplied] = useState<Proposal | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const run = async (settings: Settings, dryRun: boolean) => {
    setError(null);
    setBusy(true);
    try {
      const { calibrateThresholds } = await call(CalibrateThresholdsMutation, { vocabularyId, dryRun, ...settings });
      if (dryRun) {
        setProposal({ settings, result: calibrateThresholds });
        setApplied(null);
      } else {
        setProposal(null);
        setApplied(calibrateThresholds);
        onApplied();
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const dryRun = (e: FormEvent) => {
    e.preventDefault();
    // The API checks the numbers and answers BAD_USER_INPUT in words; the console does not guess its rules.
    void run({ target: kind === 'maxF1' ? { maxF1: true } : { precision: Number(precision) }, minPositives: Number.parseInt(minPositives, 10) }, true);
  };

  return (
    <section aria-labelledby="calibrate-title">
      <h2 id="calibrate-title">Calibrate thresholds</h2>
      <p className="hint">Learns per-tag thresholds from the “yes” / “no” answers given on the images. A dry run changes nothing.</p>
      <form onSubmit={dryRun}>
        <fieldset>
          <legend>Target</legend>
          <label className="inline">
            <input type="radio" name="calibration-target" checked={kind === 'maxF1'} onChange={() => setKind('maxF1')} /> Best F1
          </label>
          <label className="inline">
            <input type="radio" name="calibration-target" checked={kind === 'precision'} onChange={() => setKind('precision')} /> Precision at least
          </label>
          <label className="inline">
            Precision
            <input className="narrow" type="number" min={0} max={1} step={0.01} value={precision} disabled={kind !== 'precision'} onChange={(e) => setPrecision(e.target.value)} />
          </label>
        </fieldset>
        <label className="inline">
          Fewest “yes” answers per tag <input className="narrow" type="number" min={1} step={1} value={minPositives} onChange={(e) => setMinPositives(e.target.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Dry run
        </button>
      </form>
      <ErrorNote error={error} />
      {proposal && (
        <div data-testid="calibration-proposal">
          <Outcome result={proposal.result} />
          <button type="button" disabled={busy || proposal.result.changes.length === 0} onClick={() => void run(proposal.settings, false)}>
            Apply
          </button>
        </div>
      )}
      {applied && (
        <div role="status" data-testid="calibration-applied">
          <p className="notice">
            Applied: {applied.changes.length} {applied.changes.length === 1 ? 'threshold' : 'thresholds'} changed, now revision {applied.vocabulary.revision}.
          </p>
          <Outcome result={applied} />
        </div>
      )}
    </section>
  );
}

function Outcome({ result }: { result: Proposal }) {
  return (
    <>
      <p role="status">
        {result.dryRun ? 'Proposed' : 'Changed'} from {result.feedback} {result.feedback === 1 ? 'answer' : 'answers'}
        {result.skippedImages > 0 && ` (${result.skippedImages} answered images left out: encoded by another model pack)`}: {result.changes.length}{' '}
        {result.changes.length === 1 ? 'change' : 'changes'}, {result.kept.length} kept.
      </p>
      {result.changes.length > 0 && (
        <div className="table-scroll">
          <table aria-label="Threshold changes">
            <thead>
              <tr>
                <th scope="col">Tag</th>
                <th scope="col">Threshold</th>
                <th scope="col">Answers yes / no</th>
                <th scope="col">Precision</th>
                <th scope="col">Recall</th>
              </tr>
            </thead>
            <tbody>
              {result.changes.map((c) => (
                <tr key={c.tagId}>
                  <th scope="row">{c.name}</th>
                  <td>
                    {c.oldThreshold.toFixed(3)} → {c.newThreshold.toFixed(3)}
                  </td>
                  <td>
                    {c.positives} / {c.negatives}
                  </td>
                  <td>
                    {percent(c.precisionBefore)} → {percent(c.expectedPrecision)}
                  </td>
                  <td>
                    {percent(c.recallBefore)} → {percent(c.expectedRecall)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {result.kept.length > 0 && (
        <details>
          <summary>Kept thresholds ({result.kept.length})</summary>
          <ul>
            {result.kept.map((k) => (
              <li key={k.tagId}>
                {k.name}: {k.threshold.toFixed(3)} ({REASONS[k.reason] ?? k.reason}, {k.positives} “yes”)
              </li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}
