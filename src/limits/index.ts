/**
 * Per-tenant limits and quotas: what each tenant may do (the platform admin's settings over the
 * configured defaults) and the counters that enforce them, in memory or shared by replicas.
 */
export { Counters, type CounterBackend } from './counters.ts';
export { LIMIT_NAMES, LimitsService, type LimitName, type TenantLimitsInput, type TenantLimitsView } from './limits-service.ts';
