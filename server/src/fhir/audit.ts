import type { AuditEvent } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { AuditRecord, AuditSink } from './context.js';
import { FhirError } from './outcomes.js';

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
};

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

function eventType(record: AuditRecord): Pick<AuditEvent, 'type' | 'subtype'> {
  if (record.interaction === 'login') {
    return { type: { system: DCM, code: '110114', display: 'User Authentication' }, subtype: [{ system: DCM, code: '110122', display: 'Login' }] };
  }
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
    outcomeDesc: `HTTP ${record.status}${record.failed ? ' (error)' : ''}`,
    agent: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: auth?.kind === 'system' ? 'datacollector' : 'humanuser' }] },
        who: auth?.fhirUser ? { reference: auth.fhirUser } : { display: auth ? `client ${auth.clientId}` : 'anonymous' },
        altId: auth?.clientId ?? record.clientId,
        requestor: true,
        policy: auth?.tokenId ? [`urn:uuid:${auth.tokenId}`] : undefined,
      },
    ],
    source: { observer: { display: 'second-opinion-fhir' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }] },
    entity,
  };
}

/** Audit records held in memory while the database is away; past this, the oldest are counted as lost. */
const MAX_PENDING = 20_000;
const RETRY_MS = 1_000;

/**
 * Writes AuditEvents in batches so a read costs one buffered insert, not a transaction of its own.
 * `flush()` runs on shutdown; at most `intervalMs` of audit records are at risk on a hard crash.
 * A batch the database refused for a transient reason (503) is kept and retried.
 */
export class BufferedAuditSink implements AuditSink {
  private queue: AuditEvent[] = [];
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  failures = 0;

  constructor(
    private readonly store: FhirStore,
    private readonly options: { intervalMs: number; maxBatch: number; enabled: boolean } = { intervalMs: 200, maxBatch: 200, enabled: true },
  ) {}

  record(record: AuditRecord): void {
    if (!this.options.enabled) return;
    this.queue.push(toAuditEvent(record, new Date()));
    if (this.queue.length >= this.options.maxBatch) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.options.intervalMs);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return this.flushing;
    this.flushing = this.flushing.then(() =>
      this.store
        .createMany(batch)
        .then(() => undefined)
        .catch((err: unknown) => {
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
          if (!this.timer) this.timer = setTimeout(() => void this.flush(), RETRY_MS).unref();
        }),
    );
    return this.flushing;
  }
}
