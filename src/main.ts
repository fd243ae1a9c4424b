import { App } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DEMO_MODEL_WARNING } from './core/demo-model.ts';
import { createLogger } from './core/log.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(78); // EX_CONFIG
}

const log = createLogger(config.logLevel);
const app = new App(config, log);

const shutdown = (signal: string) => {
  log.info({ signal }, 'shutting down');
  app.stop().then(
    () => process.exit(0),
    (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));

try {
  await app.start();
  // Plain line for people starting it by hand; the JSON log has the same.
  console.log(`Omnitag ready at ${app.url}/graphql`);
  console.log(`Console at ${app.url}/console/`);
  if (app.services.engine.info.randomWeights) console.log(`Demo model: ${DEMO_MODEL_WARNING.message}`);
} catch (err) {
  log.fatal({ err }, 'start-up failed');
  console.error(`Omnitag could not start: ${(err as Error).message}`);
  process.exit(1);
}
