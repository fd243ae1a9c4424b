// Filled in by the foundation work: prepares the test database once per run.
export default async function setup(): Promise<void> {}
