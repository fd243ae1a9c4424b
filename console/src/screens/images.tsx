import { useState, type FormEvent } from 'react';
import type { ImagesQuery as ImagesResult } from '../generated/graphql.ts';
import { ImagesQuery, SubmitFeedbackMutation, VocabularyQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { href } from '../route.ts';
import { ErrorNote } from '../ui/error-note.tsx';
import { when } from '../ui/format.ts';
import { Pager, usePages } from '../ui/pages.tsx';
import { useLoad } from '../ui/use-load.ts';

const PAGE_SIZE = 10;
/** Kept scores shown per image, best first: the floor keeps more than a reader can judge. */
const TAGS_SHOWN = 12;

type ImageNode = ImagesResult['images']['edges'][number]['node'];

/** A vocabulary's stored images, newest first or ranked by one tag, each with its tags to answer yes / no on. */
export function Images({ vocabularyId }: { vocabularyId: string }) {
  const { call } = useSession();
  const pages = usePages();
  const [draft, setDraft] = useState('');
  const [tag, setTag] = useState('');
  const vocab = useLoad(() => call(VocabularyQuery, { id: vocabularyId }), [vocabularyId]);
  const images = useLoad(
    () => call(ImagesQuery, { vocabularyId, first: PAGE_SIZE, after: pages.after, filter: tag ? { tag } : null }),
    [vocabularyId, pages.after, tag],
  );

  const filter = (e: FormEvent) => {
    e.preventDefault();
    setTag(draft.trim());
    pages.reset();
  };

  const conn = images.data?.images;
  return (
    <>
      <p>
        <a href={href({ screen: 'vocabulary', id: vocabularyId })}>← {vocab.data?.vocabulary.name ?? 'The vocabulary'}</a>
      </p>
      <h1>Images{vocab.data && ` · ${vocab.data.vocabulary.name}`}</h1>
      <p className="hint">
        Images stored in the library (tagged with <code>store: true</code> or imported), with their tags for this vocabulary. Each “yes” / “no” is
        feedback that the calibration on the vocabulary’s screen learns thresholds from.
      </p>
      <form className="toolbar" role="search" onSubmit={filter}>
        <label>
          Rank by tag <input value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="tag name" />
        </label>
        <button type="submit">Show</button>
      </form>
      <ErrorNote error={vocab.error ?? images.error} />
      {/* After a failed load the last page is stale (another filter's): show the error alone. */}
      {conn && !images.error && (
        <>
          <p role="status" data-testid="image-count">
            {conn.totalCount.toLocaleString('en')} {conn.totalCount === 1 ? 'image' : 'images'}
            {tag && ` ranked by “${tag}”`} · page {pages.number}
          </p>
          {conn.edges.map((e) => (
            <StoredImage key={e.node.id} image={e.node} ranked={tag && e.score ? e.score : null} />
          ))}
          <Pager pages={pages} pageInfo={conn.pageInfo} />
        </>
      )}
    </>
  );
}

function StoredImage({ image, ranked }: { image: ImageNode; ranked: { score: number; passed: boolean } | null }) {
  const name = image.externalId ?? image.id;
  const result = image.results[0];
  const tags = result?.tags ?? [];
  return (
    <article className="image-result" aria-label={`Image ${name}`} data-testid="stored-image">
      <h2>
        {image.thumbnail && <img src={image.thumbnail} alt="" width={96} />} <span>{name}</span>
      </h2>
      <p className="hint">
        {image.width}×{image.height} · stored {when(image.createdAt)}
        {ranked && ` · score ${ranked.score.toFixed(3)}${ranked.passed ? ' (passed)' : ''}`}
        {result && !result.current && ` · scored at revision ${result.revision}, re-scoring pending`}
      </p>
      {tags.length === 0 ? (
        <p>{result ? 'No scores kept for this vocabulary.' : 'Not scored against this vocabulary.'}</p>
      ) : (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Tag</th>
                <th scope="col">Score</th>
                <th scope="col">Passed</th>
                <th scope="col">In the image?</th>
              </tr>
            </thead>
            <tbody>
              {tags.slice(0, TAGS_SHOWN).map((s) => (
                <tr key={s.tag.id}>
                  <th scope="row">{s.tag.name}</th>
                  <td>{s.score.toFixed(3)}</td>
                  <td>{s.passed ? 'yes' : 'no'}</td>
                  <td>
                    <FeedbackButtons imageId={image.id} tagId={s.tag.id} tagName={s.tag.name} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {tags.length > TAGS_SHOWN && <p className="hint">and {tags.length - TAGS_SHOWN} more with lower scores</p>}
        </div>
      )}
      
    </article>
  );
}

/** "yes" / "no" for one tag on one image; shows the answer the API recorded, or why it refused. */
function FeedbackButtons({ imageId, tagId, tagName }: { imageId: string; tagId: string; tagName: string }) {
  const { call } = useSession();
  const [recorded, setRecorded] = useState<boolean | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const answer = async (present: boolean) => {
    setError(null);
    setBusy(true);
    try {
      const { submitFeedback } = await call(SubmitFeedbackMutation, { imageId, tagId, present });
      setRecorded(submitFeedback.present);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="row-actions" role="group" aria-label={`Is “${tagName}” in the image?`}>
      <button type="button" disabled={busy} aria-pressed={recorded === true} onClick={() => void answer(true)}>
        yes
      </button>
      <button type="button" disabled={busy} aria-pressed={recorded === false} onClick={() => void answer(false)}>
        no
      </button>
      {recorded !== null && (
        <span role="status" data-testid="feedback-recorded">
          recorded: {recorded ? 'yes' : 'no'}
        </span>
      )}
      <ErrorNote error={error} />
    </div>
  );
}
