import { useState } from 'react';

/** A new key's secret: shown this once, with a copy button and a plain warning. */
export function SecretOnce({ secret, label }: { secret: string; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret">
      <p className="warning">
        <strong>Copy this key now.</strong> It is shown only once: the server keeps only a hash of it and cannot show it
        again.
      </p>
      <label>
        {label}
        <input readOnly value={secret} data-testid="secret" onFocus={(e) => e.currentTarget.select()} />
      </label>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard.writeText(secret).then(() => setCopied(true));
        }}
      >
        Copy
      </button>
      <span role="status">{copied ? 'Copied to the clipboard.' : ''}</span>
    </div>
  );
}
