/** Dates as the reader's locale writes them; "never" for none. */
export const when = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : 'never');

export const percent = (x: number): string => `${(x * 100).toFixed(1)} %`;
