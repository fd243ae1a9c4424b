/** The process's Prometheus metrics: defined here, fed by the services, served by src/api. */
export { Metrics, type MetricSources } from './metrics.ts';
