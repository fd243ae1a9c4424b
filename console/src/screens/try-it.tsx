import { useEffect, useState, type DragEvent } from 'react';
import type { ScoreFragment, TagImagesMutation as Outcomes } from '../generated/graphql.ts';
import { TagImageHeatmapsMutation, TagImagesMutation, VocabulariesQuery } from '../api/operations.ts';
import { explainItem } from '../api/messages.ts';
import { useSession } from '../api/session.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { percent } from '../ui/format.ts';
import { useLoad } from '../ui/use-load.ts';

type Outcome = Outcomes['tagImages'][number];
interface Picked {
  file: File;
  preview: string;
}

const LANGUAGES = [
  { code: 'en', label: 'English' },
  { code: 'zh', label: 'Chinese (built-in names)' },
  { code: 'fr', label: 'French' },
  { code: 'de', label: 'German' },
  { code: 'es', label: 'Spanish' },
];

/** Tags images the user drops, pastes or picks, against one vocabulary, and shows why. */
export function TryIt() {
  const { call } = useSession();
  const vocabs = useLoad(() => call(VocabulariesQuery, {}), []);
  const [vocabularyId, setVocabularyId] = useState('');
  const [language, setLanguage] = useState('en');
  const [showAll, setShowAll] = useState(false);
  const [picked, setPicked] = useState<Picked[]>([]);
  const [outcomes, setOutcomes] = useState<Outcome[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);

  const list = vocabs.data?.vocabularies.edges.map((e) => e.node) ?? [];
  const chosen = vocabularyId || list[0]?.id || '';
  const chosenVocab = list.find((v) => v.id === chosen);

  // The same images are sent again when the vocabulary, language or "all scores" change.
  useEffect(() => {
    if (!picked.length || !chosen) return;
    let live = true;
    setBusy(true);
    setError(null);
    const files = new Map(picked.map((p, i) => [`images.${i}.upload`, p.file]));
    call(TagImagesMutation, { vocabularyId: chosen, images: picked.map(() => ({ upload: null })), options: { explain: true, includeAll: showAll, language } }, files).then(
      (r) => live && (setOutcomes(r.tagImages), setBusy(false)),
      (err: unknown) => live && (setOutcomes(null), setError(err), setBusy(false)),
    );
    return () => {
      live = false;
    };
  }, [call, picked, chosen, language, showAll]);

  const take = (files: FileList | File[] | null | undefined) => {
    const list = [...(files ?? [])];
    if (!list.length) return;
    picked.forEach((p) => URL.revokeObjectURL(p.preview));
    setPicked(list.map((file) => ({ file, preview: URL.createObjectURL(file) })));
  };

  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length) take(files);
    };
    addEventListener('paste', onPaste);
    return () => removeEventListener('paste', onPaste);
  });

  const drop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    take(e.dataTransfer.files);
  };

  return (
    <section aria-labelledby="try-title">
      <h1 id="try-title">Try it</h1>
      <ErrorNote error={vocabs.error} />
      {vocabs.data && list.length === 0 && <p>There is no vocabulary to tag against yet.</p>}
      {list.length > 0 && (
        <div className="toolbar">
          <label>
            Vocabulary
            <select value={chosen} onChange={(e) => setVocabularyId(e.target.value)}>
              {list.map((v) => (
                <option key={v.id} value={v.id}>
                  {v.name} ({v.stats.tags} tags)
                </option>
              ))}
            </select>
          </label>
          <label>
            Language of tag names
            <select value={language} onChange={(e) => setLanguage(e.target.value)}>
              {LANGUAGES.map((l) => (
                <option key={l.code} value={l.code}>
                  {l.label}
                </option>
              ))}
            </select>
          </label>
          <label className="inline">
            <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.target.checked)} />
            Show all scores
          </label>
        </div>
      )}
      {chosenVocab && chosenVocab.stats.enabledTags === 0 && (
        <p className="notice">{chosenVocab.name} has no enabled tags yet: the server will have nothing to score. Add or enable tags first.</p>
      )}
      {list.length > 0 && (
        <div
          className={`drop${dragging ? ' dragging' : ''}`}
          onDragOver={(e) => (e.preventDefault(), setDragging(true))}
          onDragLeave={() => setDragging(false)}
          onDrop={drop}
          data-testid="drop-zone"
        >
          <p>Drop images here, paste them, or</p>
          <label>
            Choose images
            <input type="file" accept="image/*" multiple onChange={(e) => take(e.target.files)} />
          </label>
        </div>
      )}
      {busy && <p role="status">Tagging {picked.length} image(s)…</p>}
      <ErrorNote error={error} />
      {outcomes && (
        <div className="results">
          {outcomes.map((o) => (
            <ImageResult key={o.index} outcome={o} picked={picked[o.index]} request={{ vocabularyId: chosen, language, showAll }} />
          ))}
        </div>
      )}
    </section>
  );
}

interface ResultRequest {
  vocabularyId: string;
  language: string;
  showAll: boolean;
}
/** A returned tag's heat map over the image (PNG data URL), and the share of attention on the global token. */
type Overlay = { png: string; cls: number } | null;

function ImageResult({ outcome, picked, request }: { outcome: Outcome; picked: Picked | undefined; request: ResultRequest }) {
  const { call } = useSession();
  const [filter, setFilter] = useState('');
  // maps are asked for on the first "Where?" only: they cost the server one more decoder pass
  const [overlays, setOverlays] = useState<Map<string, Overlay> | null>(null);
  const [where, setWhere] = useState<{ id: string; name: string } | null>(null);
  const [whereError, setWhereError] = useState<unknown>(null);
  const show = async (id: string, name: string) => {
    setWhere({ id, name });
    if (overlays || !picked) return;
    setWhereError(null);
    try {
      const r = await call(
        TagImageHeatmapsMutation,
        { vocabularyId: request.vocabularyId, image: { upload: null }, options: { includeAll: request.showAll, language: request.language }, size: 320 },
        new Map([['image.upload', picked.file]]),
      );
      setOverlays(new Map(r.tagImage.tags.map((t) => [t.tag.id, t.explain && { png: t.explain.heatmapPng, cls: t.explain.heatmap.cls }])));
    } catch (err) {
      setWhereError(err);
    }
  };
  const overlay = where && overlays?.get(where.id);
  const name = picked?.file.name ?? `image ${outcome.index + 1}`;
  const r = outcome.result;
  return (
    <article className="image-result" aria-label={`Result for ${name}`}>
      <header>
        {picked && !outcome.error && <img src={picked.preview} alt="" width={96} height={96} />}
        <h2>{name}</h2>
        {r && (
          <p className="meta">
            {r.image.format} {r.image.width}×{r.image.height} · revision <span data-testid="revision">{r.revision}</span> · {r.timing.totalMs.toFixed(0)} ms in all,{' '}
            {r.timing.inferenceMs.toFixed(0)} ms in the model
          </p>
        )}
      </header>
      {outcome.error && (
        <div className="error" role="alert" data-code={outcome.error.code}>
          <strong>{explainItem(outcome.error).summary}</strong> ({outcome.error.code}: {outcome.error.message})
        </div>
      )}
      {r && (
        <>
          <h3>Tags that passed ({r.tags.length})</h3>
          {r.tags.length === 0 ? <p>No tag passed its threshold.</p> : <ScoreList scores={r.tags} onWhere={picked && ((s) => void show(s.tag.id, s.name))} />}
          {where && (
            <figure className="heatmap" aria-label={`Where ${where.name} was seen`}>
              <ErrorNote error={whereError} />
              {!whereError && !overlays && <p role="status">Drawing the heat map of {where.name}…</p>}
              {overlay && <img src={overlay.png} alt={`Heat map of ${where.name} over the image`} />}
              {overlays && !overlay && <p>This model pack has no heat maps (or the tag is no longer returned).</p>}
              <figcaption>
                Where the model looked for <strong>{where.name}</strong>
                {overlay && <> · {percent(overlay.cls)} of its attention went to the whole-image token</>}
              </figcaption>
            </figure>
          )}
          {r.scores && (
            <>
              <h3>All scores ({r.scores.length})</h3>
              <label>
                Find a tag
                <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
              </label>
              <ScoreList scores={r.scores.filter((s) => s.name.toLowerCase().includes(filter.trim().toLowerCase())).slice(0, 200)} />
            </>
          )}
        </>
      )}
    </article>
  );
}

function ScoreList({ scores, onWhere }: { scores: ScoreFragment[]; onWhere?: ((s: ScoreFragment) => void) | undefined }) {
  return (
    <ul className="scores">
      {scores.map((s) => (
        <li key={s.tag.id} className={s.passed ? 'passed' : 'not-passed'}>
          <span className="score-name">{s.name}</span>
          <span className="bar" aria-hidden="true">
            <span className="fill" style={{ width: percent(s.score).replace(' ', '') }} />
            <span className="mark" style={{ left: percent(s.threshold).replace(' ', '') }} />
          </span>
          <span className="score-text">
            {s.score.toFixed(3)} vs {s.threshold.toFixed(2)} — {s.passed ? 'passed' : 'not passed'}
            {s.usedFallback && ' (template descriptions stood in)'}
          </span>
          {onWhere && (
            <button type="button" className="where" onClick={() => onWhere(s)}>
              Where?<span className="visually-hidden"> {s.name}</span>
            </button>
          )}
          {s.explanation && s.explanation.length > 0 && (
            <details>
              <summary>
                Why<span className="visually-hidden"> {s.name}</span>
              </summary>
              <ol className="why">
                {s.explanation.map((d, i) => (
                  <li key={i}>
                    {percent(d.weight)} · {d.source} · {d.text ?? '(built-in description: no text)'}
                  </li>
                ))}
              </ol>
            </details>
          )}
        </li>
      ))}
    </ul>
  );
}
