/**
 * Database maintenance without network access or the native Prisma engines:
 *   migrate            apply pending migrations to DATABASE_URL (or the embedded database)
 *   create <name>      write prisma/migrations/<stamp>_<name> for changes in schema.prisma
 *   check              exit 1 when schema.prisma and the migrations disagree
 * `create` and `check` replay the migrations in a scratch database on a real PostgreSQL server
 * (--server-url, else DATABASE_URL), which they create and drop.
 */
import { Command } from 'commander';
import { loadConfig } from '../config.ts';
import { openDatabaseServer } from '../db/server.ts';
import { applyMigrations, createMigration, diffSchemaAgainstMigrations } from '../db/migrate.ts';

function serverUrl(opts: { serverUrl?: string }): string {
  const url = opts.serverUrl ?? loadConfig().database.url;
  if (!url) {
    console.error('This command needs a PostgreSQL server: pass --server-url or set DATABASE_URL.');
    process.exit(2);
  }
  return url;
}

const program = new Command('db').description('Omnitag database migrations');

program
  .command('migrate')
  .description('apply pending migrations')
  .action(async () => {
    const config = loadConfig();
    const server = await openDatabaseServer(config);
    try {
      const applied = await applyMigrations(server.url);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    } finally {
      await server.stop();
    }
  });

program
  .command('create')
  .argument('<name>', 'short description, e.g. add_tag_colour')
  .description('write a migration for the changes in prisma/schema.prisma')
  .option('--server-url <url>', 'PostgreSQL server for the scratch database (default: DATABASE_URL)')
  .action(async (name: string, opts: { serverUrl?: string }) => {
    const dir = await createMigration(name, serverUrl(opts));
    console.log(dir ? `created ${dir}` : 'no schema changes: nothing to create');
  });

program
  .command('check')
  .option('--server-url <url>', 'PostgreSQL server for the scratch database (default: DATABASE_URL)')
  .description('fail when the schema and the migrations disagree')
  .action(async (opts: { serverUrl?: string }) => {
    const sql = await diffSchemaAgainstMigrations(serverUrl(opts));
    if (sql) {
      console.error('prisma/schema.prisma has changes that no migration contains:\n');
      console.error(sql);
      console.error('Run `npm run db:migration:create -- <name>` to write one.');
      process.exitCode = 1;
    } else {
      console.log('schema and migrations agree');
    }
  });

await program.parseAsync();
