import { useState } from 'react';
import type { TagRowFragment } from '../generated/graphql.ts';
import { GenerateDescriptionsMutation, VocabularyQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { href } from '../route.ts';
import { ErrorNote } from '../ui/error-note.tsx';
import { useLoad } from '../ui/use-load.ts';
import { when } from '../ui/format.ts';
import { BulkAdd } from './bulk-add.tsx';
import { Calibrate } from './calibrate.tsx';
import { Descriptions } from './descriptions.tsx';
import { JobProgress } from './job-progress.tsx';
import { TagTable } from './tag-table.tsx';

/** One vocabulary: stats and feedback, its tags, adding tags, descriptions and generation jobs, calibration. */
export function VocabularyDetail({ id, admin }: { id: string; admin: boolean }) {
  const { call } = useSession();
  const vocab = useLoad(() => call(VocabularyQuery, { id }), [id]);
  const [version, setVersion] = useState(0);
  const [jobId, setJobId] = useState<string | null>(null);
  const [open, setOpen] = useState<TagRowFragment | null>(null);
  const [error, setError] = useState<unknown>(null);

  const changed = () => {
    setVersion((v) => v + 1);
    vocab.reload();
  };
  const generate = async (tagIds: string[]) => {
    setError(null);
    try {
      const { generateDescriptions } = await call(GenerateDescriptionsMutation, { vocabularyId: id, tagIds: tagIds.length ? tagIds : null });
      setJobId(generateDescriptions.id);
    } catch (err) {
      setError(err);
    }
  };

  const v = vocab.data?.vocabulary;
  return (
    <>
      <p>
        <a href={href({ screen: 'vocabularies' })}>← All vocabularies</a>
      </p>
      <ErrorNote error={vocab.error ?? error} />
      {v && (
        <>
          <h1>{v.name}</h1>
          <dl className="stats" aria-label="Statistics">
            <div>
              <dt>Tags</dt>
              <dd data-testid="stat-tags">{v.stats.tags.toLocaleString('en')}</dd>
            </div>
            <div>
              <dt>Enabled</dt>
              <dd>{v.stats.enabledTags.toLocaleString('en')}</dd>
            </div>
            <div>
              <dt>Descriptions pending</dt>
              <dd>{v.stats.pendingTags}</dd>
            </div>
            <div>
              <dt>Descriptions failed</dt>
              <dd>{v.stats.failedTags}</dd>
            </div>
            <div>
              <dt>Revision</dt>
              <dd>{v.revision}</dd>
            </div>
            <div>
              <dt>Feedback yes / no</dt>
              <dd data-testid="stat-feedback">
                {v.feedback.present} / {v.feedback.absent}
              </dd>
            </div>
            <div>
              <dt>Tags with feedback</dt>
              <dd>{v.feedback.tags}</dd>
            </div>
          </dl>
          <p data-testid="last-calibration">
            Last calibration:{' '}
            {v.lastCalibration
              ? `${v.lastCalibration.target === 'precision' ? `precision ≥ ${v.lastCalibration.precision}` : 'best F1'}, ${v.lastCalibration.changed} ${v.lastCalibration.changed === 1 ? 'threshold' : 'thresholds'} changed from ${v.lastCalibration.feedback} answers (revision ${v.lastCalibration.revision}, ${when(v.lastCalibration.createdAt)})`
              : 'never'}
            {' · '}
            <a href={href({ screen: 'images', id })}>Images and feedback</a>
          </p>
          {jobId && <JobProgress key={jobId} jobId={jobId} onFinished={changed} onRetry={(ids) => void generate(ids)} />}
          <TagTable vocabularyId={id} admin={admin} version={version} onChanged={changed} onGenerate={(ids) => void generate(ids)} onDescriptions={setOpen} />
          {admin && <BulkAdd vocabularyId={id} onAdded={changed} />}
          {admin && <Calibrate vocabularyId={id} onApplied={changed} />}
          {open && (
            <Descriptions
              tagId={open.id}
              tagName={open.name}
              admin={admin}
              onClose={() => setOpen(null)}
              onChanged={changed}
              onGenerate={() => {
                setOpen(null);
                void generate([open.id]);
              }}
            />
          )}
        </>
      )}
    </>
  );
}
