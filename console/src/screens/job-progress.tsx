import { useEffect, useState } from 'react';
import type { DescriptionJobQuery as Job } from '../generated/graphql.ts';
import { CancelDescriptionJobMutation, DescriptionJobQuery } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { ErrorNote } from '../ui/error-note.tsx';
import { percent } from '../ui/format.ts';

const POLL_MS = 500;
const FINISHED = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** A description job, polled until it ends: progress, failed items and why, retry and cancel. */
export function JobProgress({ jobId, onFinished, onRetry }: { jobId: string; onFinished: () => void; onRetry: (tagIds: string[]) => void }) {
  const { call } = useSession();
  const [job, setJob] = useState<Job['descriptionJob'] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const { descriptionJob } = await call(DescriptionJobQuery, { id: jobId });
        if (!live) return;
        setJob(descriptionJob);
        setError(null);
        if (FINISHED.has(descriptionJob.state)) return onFinished();
      } catch (err) {
        if (!live) return;
        setError(err);
      }
      timer = setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
    // onFinished changes identity on every render of the parent; the job id is what matters.
  }, [call, jobId]);

  const cancel = async () => {
    try {
      await call(CancelDescriptionJobMutation, { id: jobId });
    } catch (err) {
      setError(err);
    }
  };

  if (!job) return <ErrorNote error={error} />;
  const done = job.succeeded + job.failed;
  const failedItems = job.items.edges.map((e) => e.node);
  return (
    <section className="job" aria-labelledby="job-title" data-state={job.state}>
      <h2 id="job-title">Generating descriptions ({job.generator})</h2>
      <progress max={job.total} value={done} aria-label="Description generation progress" />
      <p role="status">
        {job.state.toLowerCase()}: {done} of {job.total} tags ({percent(job.progress)}), {job.succeeded} ready, {job.failed} failed
      </p>
      {job.error && <p className="error">{job.error}</p>}
      {failedItems.length > 0 && (
        <>
          <h3>Failed tags</h3>
          <ul className="failed-items">
            {failedItems.map((item) => (
              <li key={item.id}>
                <strong>{item.tag.name}</strong>: {item.error ?? 'no reason given'}
              </li>
            ))}
          </ul>
        </>
      )}
      <div className="actions">
        {!FINISHED.has(job.state) && (
          <button type="button" onClick={() => void cancel()}>
            Cancel job
          </button>
        )}
        {FINISHED.has(job.state) && failedItems.length > 0 && (
          <button type="button" onClick={() => onRetry(failedItems.map((i) => i.tag.id))}>
            Retry failed tags
          </button>
        )}
      </div>
      <ErrorNote error={error} />
    </section>
  );
}
