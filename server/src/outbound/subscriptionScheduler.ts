import type { Subscription } from 'fhir/r4.js';
import { describeError } from './errors.js';
import { countingSubscriptions, endIfGrantEnded, endSubscription, eventsKeptSince, hasEnded, REST_HOOK, settingsOrUndefined, type SubscriptionDeps } from './subscriptions.js';

/**
 * The periodic pass over Subscriptions: turns off those whose end has passed, and queues heartbeats
 * (backport-heartbeat-period) for active ones. One outbox row per subscription and period slot (the
 * dedupe key), so several server processes running the scheduler do not multiply heartbeats.
 */
export class HeartbeatScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      this.current = this.runOnce().catch((err) => this.deps.logger.warn('heartbeat_schedule_failed', { error: describeError(err) }));
      void this.current.then(() => {
        if (this.running) {
          this.timer = setTimeout(loop, this.intervalMs);
          this.timer.unref();
        }
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
  }

  /**
   * Ends what is over, forgets events past their retention and enqueues the heartbeats that are due now;
   * returns how many subscriptions have one due.
   */
  async runOnce(now = Date.now()): Promise<number> {
    const { store, registry, fhirBase } = this.deps;
    await store.forgetSubscriptionEvents({ before: eventsKeptSince(this.deps.settings, now) });
    let due = 0;
    for (const sub of await countingSubscriptions(store, registry, fhirBase)) {
      if (await this.end(sub, now)) continue;
      if (sub.status === 'active' && (await this.heartbeat(sub, now))) due++;
    }
    return due;
  }

  /** Turns the Subscription off if its end has passed or the grant it was made under has ended; true if it is over. */
  private async end(sub: Subscription, now: number): Promise<boolean> {
    try {
      const over = hasEnded(sub, now) ? await endSubscription(this.deps.store, sub.id!, now) : await endIfGrantEnded(this.deps, sub);
      if (over) this.deps.logger.info('subscription_ended', { subscription: sub.id });
      return over || hasEnded(sub, now);
    } catch (err) {
      // Changed meanwhile (by its client or another process): the next pass judges it again.
      this.deps.logger.warn('subscription_end_failed', { subscription: sub.id, error: describeError(err) });
      return true;
    }
  }

  private async heartbeat(sub: Subscription, now: number): Promise<boolean> {
    const settings = settingsOrUndefined(sub, this.deps);
    if (!settings?.heartbeatSeconds) return false;
    const periodMs = settings.heartbeatSeconds * 1000;
    // Just activated (or changed): the handshake or last change is recent enough.
    if (now - Date.parse(sub.meta?.lastUpdated ?? '') < periodMs) return false;
    const slot = Math.floor(now / periodMs);
    await this.deps.store.enqueue(REST_HOOK, { type: 'heartbeat', subscription: settings.id }, `${REST_HOOK}:${settings.id}:heartbeat:${slot}`);
    return true;
  }
}
