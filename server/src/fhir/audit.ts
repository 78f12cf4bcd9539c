import type { AuditEvent } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { AuditRecord, AuditSink } from './context.js';
import { FhirError } from './outcomes.js';
import { nonEmpty } from './jsonRules.js';

const ACTIONS: Record<string, AuditEvent['action']> = {
  create: 'C',
  read: 'R',
  vread: 'R',
  search: 'E',
  history: 'R',
  update: 'U',
  patch: 'U',
  delete: 'D',
  operation: 'E',
  batch: 'E',
  transaction: 'E',
  capabilities: 'R',
  login: 'E',
  refused: 'E',
  export: 'R',
};

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

function eventType(record: AuditRecord): Pick<AuditEvent, 'type' | 'subtype'> {
  if (record.interaction === 'login') {
    return { type: { system: DCM, code: '110114', display: 'User Authentication' }, subtype: [{ system: DCM, code: '110122', display: 'Login' }] };
  }
  if (record.interaction === 'export') return { type: { system: DCM, code: '110106', display: 'Export' } };
  const rest = { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' };
  if (record.interaction === 'refused') return { type: rest };
  return { type: rest, subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: record.interaction }] };
}

/** DICOM/FHIR AuditEvent for one REST interaction (who, what, which patient, outcome). */
export function toAuditEvent(record: AuditRecord, recorded: Date): AuditEvent {
  const outcome = record.failed ? '4' : record.status < 400 ? '0' : record.status < 500 ? '4' : '8';
  const entity: AuditEvent['entity'] = [];
  if (record.resourceType && record.id) entity.push({ what: { reference: `${record.resourceType}/${record.id}` }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2' } });
  else if (record.resourceType) entity.push({ what: { display: record.resourceType }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2' } });
  if (record.patient) entity.push({ what: { reference: record.patient }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } });
  if (record.operation) entity.push({ what: { display: record.operation }, name: record.operation });
  const auth = record.auth;
  return {
    resourceType: 'AuditEvent',
    ...eventType(record),
    action: ACTIONS[record.interaction] ?? 'E',
    recorded: recorded.toISOString(),
    outcome,
    outcomeDesc: outcomeDescription(record),
    agent: record.destination ? exportAgents(record.destination) : [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: auth?.kind === 'system' ? 'datacollector' : 'humanuser' }] },
        who: auth?.fhirUser ? { reference: auth.fhirUser } : { display: auth ? `client ${auth.clientId}` : 'anonymous' },
        altId: auth?.clientId ?? record.clientId,
        requestor: true,
        policy: auth?.tokenId ? [`urn:uuid:${auth.tokenId}`] : undefined,
      },
    ],
    source: { observer: { display: 'second-opinion-fhir' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }] },
    entity: nonEmpty(entity),
  };
}

function outcomeDescription(record: AuditRecord): string {
  if (!record.status) return 'No answer (error)';
  if (record.concealedRefusal) return `HTTP ${record.status} (access refused, answered as not found)`;
  return `HTTP ${record.status}${record.failed ? ' (error)' : ''}`;
}

/** DICOM Export: this server sends (Source Role ID), the endpoint receives (Destination Role ID) at its network address. */
function exportAgents(destination: string): AuditEvent['agent'] {
  return [
    { type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] }, who: { display: 'second-opinion-fhir' }, requestor: true },
    { type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] }, who: { display: destination }, requestor: false, network: { address: destination, type: '5' } },
  ];
}

/** Audit records held in memory while the database is away; past this, the oldest are counted as lost. */
const MAX_PENDING = 20_000;
const RETRY_MS = 1_000;

export interface AuditSinkOptions {
  enabled: boolean;
  /** A partial batch waits at most this long. */
  intervalMs: number;
  maxBatch: number;
  /** Batches written at the same time (PostgreSQL runs them on separate sessions). */
  maxWriters: number;
  /** Events not yet stored beyond which requests wait before answering. */
  maxBacklog: number;
}

/**
 * Writes AuditEvents in batches so a read costs one buffered insert, not a transaction of its own.
 * When requests come faster than the database stores their AuditEvents, `record` hands back a promise
 * that the request waits for before answering: the server slows down to what its audit log can take
 * instead of holding a growing backlog in memory (which a crash would lose). While the database is
 * unavailable (503) records are kept, up to MAX_PENDING, and retried, and nobody waits on them.
 * `flush()` runs on shutdown; at most `intervalMs` and `maxBacklog` of audit records are at risk on a hard crash.
 */
export class BufferedAuditSink implements AuditSink {
  private queue: AuditEvent[] = [];
  private timer?: NodeJS.Timeout;
  private readonly writes = new Set<Promise<void>>();
  private eventsBeingWritten = 0;
  private waiting: (() => void)[] = [];
  /** The database refused a batch as unavailable: writes resume on the retry timer. */
  private retrying = false;
  failures = 0;

  constructor(
    private readonly store: FhirStore,
    private readonly options: AuditSinkOptions = { enabled: true, intervalMs: 50, maxBatch: 50, maxWriters: 4, maxBacklog: 1_000 },
  ) {}

  record(record: AuditRecord): Promise<void> | undefined {
    if (!this.options.enabled) return undefined;
    this.queue.push(toAuditEvent(record, new Date()));
    this.startWrites(false);
    if (this.retrying || this.backlog() <= this.options.maxBacklog) return undefined;
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Writes everything recorded so far (unless the database is unavailable, when the retry timer keeps it). */
  async flush(): Promise<void> {
    for (;;) {
      this.startWrites(true);
      if (!this.writes.size) return;
      await Promise.all(this.writes);
      if (this.retrying) return;
    }
  }

  private backlog(): number {
    return this.queue.length + this.eventsBeingWritten;
  }

  /** Starts a write per full batch (any batch when `partial`) while writers are free; a timer takes the rest. */
  private startWrites(partial: boolean): void {
    if (this.retrying) return;
    if (partial) this.clearTimer();
    while (this.writes.size < this.options.maxWriters && (this.queue.length >= this.options.maxBatch || (partial && this.queue.length > 0))) {
      this.write(this.queue.splice(0, this.options.maxBatch));
    }
    if (this.queue.length > 0 && !this.timer) this.timer = setTimeout(() => this.startWrites(true), this.options.intervalMs);
  }

  private write(batch: AuditEvent[]): void {
    this.eventsBeingWritten += batch.length;
    const write: Promise<void> = this.store
      .createMany(batch)
      .then(
        () => undefined,
        (err: unknown) => this.failed(batch, err),
      )
      .finally(() => {
        this.writes.delete(write);
        this.eventsBeingWritten -= batch.length;
        this.release();
        this.startWrites(false);
      });
    this.writes.add(write);
  }

  private failed(batch: AuditEvent[], err: unknown): void {
    if (!(err instanceof FhirError && err.status === 503)) {
      this.failures += batch.length;
      return;
    }
    this.queue = [...batch, ...this.queue];
    const excess = this.queue.length - MAX_PENDING;
    if (excess > 0) {
      this.queue.splice(0, excess);
      this.failures += excess;
    }
    if (this.retrying) return;
    this.retrying = true;
    this.clearTimer();
    setTimeout(() => {
      this.retrying = false;
      this.startWrites(true);
    }, RETRY_MS).unref();
  }

  /** Lets waiting requests answer once the backlog is under its limit (or the database is away). */
  private release(): void {
    if (!this.retrying && this.backlog() > this.options.maxBacklog) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
