import { useEffect, useState, type KeyboardEvent } from 'react';
import type { TagRowFragment, UpdateTagInput } from '../generated/graphql.ts';
import { UpdateTagMutation } from '../api/operations.ts';
import { useSession } from '../api/session.tsx';
import { explain } from '../api/messages.ts';
import { formatNames, parseNames } from './localized-names.ts';

const parseAliases = (text: string): string[] => text.split(',').map((a) => a.trim()).filter(Boolean);

interface Props {
  tag: TagRowFragment;
  admin: boolean;
  selected: boolean;
  onSelect: (on: boolean) => void;
  onChanged: (tag: TagRowFragment) => void;
  onDescriptions: () => void;
}

/** One tag: inline editors for an ADMIN key, plain values for a CLIENT key. */
export function TagRow({ tag, admin, selected, onSelect, onChanged, onDescriptions }: Props) {
  const { call } = useSession();
  const [threshold, setThreshold] = useState(tag.threshold);
  // Shown at once; put back if the server refuses the change.
  const [enabled, setEnabled] = useState(tag.enabled);
  const [aliases, setAliases] = useState(tag.aliases.join(', '));
  const [names, setNames] = useState(formatNames(tag.names));
  // A value that changed on the server (a save, a reload) replaces its editor's text; editors of
  // the other fields keep what the user is typing.
  const savedAliases = tag.aliases.join(', ');
  const savedNames = formatNames(tag.names);
  useEffect(() => setThreshold(tag.threshold), [tag.threshold]);
  useEffect(() => setEnabled(tag.enabled), [tag.enabled]);
  useEffect(() => setAliases(savedAliases), [savedAliases]);
  useEffect(() => setNames(savedNames), [savedNames]);
  const [state, setState] = useState<{ saving: boolean; error: string | null; saved: boolean }>({ saving: false, error: null, saved: false });

  const save = async (input: UpdateTagInput) => {
    setState({ saving: true, error: null, saved: false });
    try {
      const { updateTag } = await call(UpdateTagMutation, { id: tag.id, input });
      onChanged(updateTag);
      setState({ saving: false, error: null, saved: true });
    } catch (err) {
      setEnabled(tag.enabled);
      const { summary, detail } = explain(err);
      setState({ saving: false, error: `${summary} ${detail}`, saved: false });
    }
  };
  const saveThreshold = () => {
    if (Math.abs(threshold - tag.threshold) > 1e-9 && threshold > 0 && threshold < 1) void save({ threshold });
  };
  const onEnter = (commit: () => void) => (e: KeyboardEvent) => {
    if (e.key === 'Enter') commit();
  };
  const saveAliases = () => {
    if (aliases !== savedAliases) void save({ aliases: parseAliases(aliases) });
  };
  const saveNames = () => {
    if (names !== savedNames) void save({ names: parseNames(names) });
  };

  const label = (what: string) => `${what} of ${tag.name}`;
  return (
    <tr aria-selected={admin ? selected : undefined} data-tag={tag.name}>
      {admin && (
        <td>
          <input type="checkbox" aria-label={`Select ${tag.name}`} checked={selected} onChange={(e) => onSelect(e.target.checked)} />
        </td>
      )}
      <th scope="row">
        {tag.name}
        {tag.builtin && <span className="badge">built-in</span>}
      </th>
      <td className="threshold">
        {admin ? (
          <>
            <input
              type="range"
              min={0.01}
              max={0.99}
              step={0.01}
              aria-label={label('Threshold slider')}
              value={threshold}
              onChange={(e) => setThreshold(Number(e.target.value))}
              onPointerUp={saveThreshold}
              onKeyUp={saveThreshold}
            />
            <input
              type="number"
              min={0.01}
              max={0.99}
              step={0.01}
              aria-label={label('Threshold')}
              value={threshold}
              onChange={(e) => setThreshold(Number(e.target.value))}
              onBlur={saveThreshold}
              onKeyDown={onEnter(saveThreshold)}
            />
          </>
        ) : (
          threshold.toFixed(2)
        )}
        {tag.thresholdOverride == null && <span className="hint"> inherited</span>}
      </td>
      <td>
        {admin ? (
          <input
            type="checkbox"
            aria-label={label('Enabled')}
            checked={enabled}
            onChange={(e) => {
              setEnabled(e.target.checked);
              void save({ enabled: e.target.checked });
            }}
          />
        ) : tag.enabled ? (
          'yes'
        ) : (
          'no'
        )}
      </td>
      <td>
        {admin ? (
          <input aria-label={label('Aliases (comma-separated)')} value={aliases} onChange={(e) => setAliases(e.target.value)} onBlur={saveAliases} onKeyDown={onEnter(saveAliases)} />
        ) : (
          tag.aliases.join(', ')
        )}
      </td>
      <td>
        {admin ? (
          <input aria-label={label('Names in other languages (language: name; …)')} value={names} onChange={(e) => setNames(e.target.value)} onBlur={saveNames} onKeyDown={onEnter(saveNames)} />
        ) : (
          formatNames(tag.names)
        )}
      </td>
      <td>
        <span className={`status status-${tag.status.toLowerCase()}`}>{tag.status.toLowerCase()}</span>
        {tag.statusReason && <span className="reason">{tag.statusReason}</span>}
      </td>
      <td>
        <button type="button" onClick={onDescriptions}>
          Descriptions<span className="visually-hidden"> of {tag.name}</span>
        </button>
        <span className="row-state" role="status">
          {state.saving ? 'Saving…' : state.saved ? 'Saved' : ''}
        </span>
        {state.error && (
          <span className="error" role="alert">
            {state.error}
          </span>
        )}
      </td>
    </tr>
  );
}
