import type { Config } from '../config/schema.ts';
import type { DeliveryRules } from './rules.ts';

/** The engine's view of the configuration, read on every use (hot reload). */
export interface EngineSettings {
  trigger: 'cron' | 'continuous';
  cron: string;
  timeZone: string;
  strategy: 'all-at-once' | 'batched' | 'timing-wheel';
  batchSize: number;
  leaseMs: number;
  /** Longest sleep of the continuous trigger, and the wheel's refresh period (catches other replicas' changes). */
  pollMs: number;
  /** How far ahead the timing wheel preloads. */
  lookaheadMs: number;
  sendConcurrency: number;
  /** Use multicast for identical messages where it drains faster. */
  multicast: boolean;
  /** Retry delay for a channel paused without a known end. */
  pausedRetryMs: number;
  rules: DeliveryRules;
}

export function engineSettings(config: Config): EngineSettings {
  const n = config.notifications;
  return {
    trigger: n.trigger,
    cron: n.cron,
    timeZone: config.timezone,
    strategy: n.strategy,
    batchSize: n.batchSize,
    leaseMs: n.lease.ms,
    pollMs: n.pollInterval.ms,
    lookaheadMs: n.lookahead.ms,
    sendConcurrency: n.sendConcurrency,
    multicast: n.multicast,
    pausedRetryMs: n.pausedRetry.ms,
    rules: deliveryRules(config),
  };
}

export function deliveryRules(config: Config): DeliveryRules {
  const n = config.notifications;
  return {
    meetingLeadMs: n.meetingUrl.leadMinutes * 60_000,
    feedbackBeforeEndMs: n.feedbackUrl.beforeEndMinutes * 60_000,
    feedbackLateWindowMs: n.feedbackUrl.lateWindow.ms,
  };
}
