/**
 * Benchmark data: members, networks and second-opinion cases at a chosen size, shaped like the demo
 * data (the same builders) so the server's searches and `$submit` see realistic resources. Seeded,
 * so every run and every driver gets the same data. Loaded with `FhirStore.createMany` in batches,
 * with a progress bar on stderr.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Resource, ServiceRequest, Task } from 'fhir/r4.js';
import { member, PLANS, professional, SPECIALTIES, type SpecialtyKey } from '../server/src/demo/demoData.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import type { FhirStore } from '../server/src/storage/FhirStore.js';
import { SECOND_OPINION_CODE } from '../server/src/workflow/caseResources.js';

/** One professional per this many members (about a plan's ratio of contracted specialists). */
const MEMBERS_PER_PROFESSIONAL = 100;
const FAMILIES = ['Garcia', 'Nguyen', 'Smith', 'Hernandez', 'Kim', 'Patel', 'Johnson', 'Lopez', 'Chen', 'Williams', 'Martinez', 'Davis', 'Singh', 'Brown', 'Lee', 'Wilson'];
const GIVEN = ['Maria', 'James', 'Linh', 'Jose', 'Aisha', 'Wei', 'Sofia', 'Daniel', 'Grace', 'Omar', 'Rosa', 'Ethan', 'Mei', 'Luis', 'Hannah', 'Ravi'];
const CONDITIONS = [
  { code: '49436004', display: 'Atrial fibrillation', specialty: 'cardiology' },
  { code: '239873007', display: 'Osteoarthritis of knee', specialty: 'orthopaedics' },
  { code: '254837009', display: 'Malignant neoplasm of breast', specialty: 'oncology' },
  { code: '35489007', display: 'Depressive disorder', specialty: 'psychiatry', bh: true },
  { code: '84114007', display: 'Heart failure', specialty: 'cardiology' },
  { code: '230690007', display: 'Cerebrovascular accident', specialty: 'neurology' },
] as const;
const STEPS = ['received', 'um-review', 'um-review', 'info-requested', 'medical-director-review', 'approved', 'approved', 'denied'] as const;

/** mulberry32: a small seeded PRNG, so generated data is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GeneratedCounts {
  members: number;
  professionals: number;
  cases: number;
}

/** About five resources per member (Patient, Coverage, CareTeam, Condition, and half a case of two). */
export function countsFor(totalResources: number): GeneratedCounts {
  const members = Math.max(1, Math.round(totalResources / (5 + 3 / MEMBERS_PER_PROFESSIONAL)));
  return { members, professionals: Math.max(1, Math.ceil(members / MEMBERS_PER_PROFESSIONAL)), cases: Math.floor(members / 2) };
}

/** The resources, in loading order (professionals first, so members can refer to them). */
export function* generateResources(totalResources: number, seed = 20261125): Generator<Resource> {
  const random = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const { members, professionals } = countsFor(totalResources);
  const specialties = Object.keys(SPECIALTIES) as SpecialtyKey[];
  for (let i = 0; i < professionals; i++) {
    const plan = PLANS[i % PLANS.length];
    yield* professional({
      id: `gen-pro-${i}`,
      family: pick(FAMILIES),
      given: pick(GIVEN),
      specialty: specialties[i % specialties.length],
      org: `${plan.id}-ipa-${i % 2 ? 'b' : 'a'}`,
      plans: [plan.id],
      boardCertified: random() > 0.1,
      accepting: random() > 0.2,
      lat: plan.lat + (random() - 0.5) / 2,
      lon: plan.lon + (random() - 0.5) / 2,
    }, 100_000 + i);
  }
  for (let i = 0; i < members; i++) {
    const plan = PLANS[i % PLANS.length];
    const condition = pick(CONDITIONS);
    const id = `gen-member-${i}`;
    yield* member({
      id,
      family: pick(FAMILIES),
      given: pick(GIVEN),
      birthDate: `${1940 + Math.floor(random() * 65)}-${String(1 + Math.floor(random() * 12)).padStart(2, '0')}-${String(1 + Math.floor(random() * 28)).padStart(2, '0')}`,
      gender: random() > 0.5 ? 'female' : 'male',
      plan: plan.id,
      language: random() > 0.6 ? 'es' : 'en',
      group: i % 2 ? 'b' : 'a',
      condition: { code: condition.code, display: condition.display, bh: 'bh' in condition },
    }, 1_000_000 + i);
    if (i % 2 === 0) yield* secondOpinionCase(i, id, plan.id, condition.specialty, professionals, random);
  }
}

/** A stored case as `$submit` leaves it: the ServiceRequest and its Task at some step of review. */
function secondOpinionCase(i: number, patientId: string, planId: string, specialty: SpecialtyKey, professionals: number, random: () => number): Resource[] {
  const received = new Date(Date.UTC(2026, 9, 1) + Math.floor(random() * 60 * 86_400_000));
  const due = new Date(received.getTime() + (random() > 0.9 ? 3 : 5) * 86_400_000);
  const step = STEPS[Math.floor(random() * STEPS.length)];
  const identifier = { system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `gen-case-${i}` };
  const performer = `PractitionerRole/role-gen-pro-${Math.floor(random() * professionals)}`;
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    id: `gen-sr-${i}`,
    meta: { profile: [PROFILES.serviceRequest] },
    identifier: [identifier],
    status: 'active',
    intent: 'order',
    category: [{ coding: [SECOND_OPINION_CODE] }],
    code: { coding: [SECOND_OPINION_CODE] },
    subject: { reference: `Patient/${patientId}` },
    requester: { reference: `PractitionerRole/role-${planId}-pcp-1` },
    insurance: [{ reference: `Coverage/coverage-${patientId}` }],
    reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'serious-condition' }] }],
    performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: SPECIALTIES[specialty].code }] },
    performer: [{ reference: performer }],
    authoredOn: received.toISOString(),
  };
  const open = !['approved', 'denied'].includes(step);
  const task: Task = {
    resourceType: 'Task',
    id: `gen-task-${i}`,
    meta: { profile: [PROFILES.task] },
    identifier: [identifier],
    status: open ? (step === 'received' ? 'requested' : 'in-progress') : step === 'approved' ? 'accepted' : 'rejected',
    businessStatus: { coding: [{ system: CODE_SYSTEMS.businessStatus, code: step }] },
    intent: 'order',
    priority: due.getTime() - received.getTime() < 4 * 86_400_000 ? 'urgent' : 'routine',
    code: { coding: [SECOND_OPINION_CODE] },
    focus: { reference: `ServiceRequest/${sr.id}` },
    for: { reference: `Patient/${patientId}` },
    authoredOn: received.toISOString(),
    lastModified: received.toISOString(),
    requester: sr.requester,
    owner: { reference: `Organization/${planId}` },
    restriction: { period: { start: received.toISOString(), end: due.toISOString() } },
  };
  return [sr, task];
}

/**
 * Loads `totalResources` generated resources into the store, 500 per statement batch, with up to
 * `concurrency` batches in flight (on PostgreSQL, Node indexes the next batch while the server
 * writes the last; PGlite runs one statement at a time, so 1 there).
 */
export async function loadGenerated(store: FhirStore, totalResources: number, concurrency = 1, progress = process.stderr): Promise<number> {
  const started = Date.now();
  let batch: Resource[] = [];
  let loaded = 0;
  const inFlight = new Set<Promise<void>>();
  const bar = () => {
    if (!progress.isTTY && loaded % 50_000 !== 0 && loaded !== totalResources) return;
    const done = Math.min(1, loaded / totalResources);
    const width = 30;
    const rate = loaded / Math.max(0.001, (Date.now() - started) / 1000);
    progress.write(`\r  loading [${'#'.repeat(Math.round(done * width)).padEnd(width, '.')}] ${loaded.toLocaleString('en-US')} resources, ${rate.toFixed(0)}/s${progress.isTTY ? '' : '\n'}`);
  };
  const send = async (resources: Resource[]) => {
    const write = store.createMany(resources).then(() => {
      loaded += resources.length;
      bar();
    });
    const tracked = write.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
  };
  for (const resource of generateResources(totalResources)) {
    batch.push(resource);
    if (batch.length === 500) {
      await send(batch);
      batch = [];
    }
  }
  if (batch.length) await send(batch);
  await Promise.all(inFlight);
  if (progress.isTTY) progress.write('\n');
  return loaded;
}

/** The same resources as NDJSON, for the peer server to load. */
export async function writeNdjson(file: string, totalResources: number): Promise<void> {
  const out = createWriteStream(file);
  for (const resource of generateResources(totalResources)) {
    if (!out.write(`${JSON.stringify(resource)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** A `$submit` body: the member's PCP asks for a cardiologist's opinion, in the plan's network or out of it. */
export function submissionFor(memberId: string, planId: string, inNetwork: boolean): string {
  return JSON.stringify({
    resourceType: 'Bundle',
    type: 'collection',
    entry: [{
      resource: {
        resourceType: 'ServiceRequest',
        identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: randomUUID() }],
        status: 'draft',
        intent: 'order',
        subject: { reference: `Patient/${memberId}` },
        requester: { reference: `PractitionerRole/role-${planId}-pcp-1` },
        insurance: [{ reference: `Coverage/coverage-${memberId}` }],
        reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'serious-condition' }] }],
        performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: SPECIALTIES.cardiology.code }] },
        performer: [{ reference: inNetwork ? `PractitionerRole/role-${planId}-card-2` : 'PractitionerRole/role-oon-card-1' }],
      },
    }],
  });
}

/** A transaction Bundle of 20 POSTs: ten new Patients, each with a Coverage referring to it by `urn:uuid`. */
export function transactionBundle(): string {
  const entry = Array.from({ length: 10 }, (_, i) => {
    const patient = `urn:uuid:${randomUUID()}`;
    return [
      { fullUrl: patient, resource: { resourceType: 'Patient', name: [{ family: `Bench${i}`, given: ['Tx'] }], birthDate: '1980-01-01' }, request: { method: 'POST', url: 'Patient' } },
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'Coverage', status: 'active', beneficiary: { reference: patient }, payor: [{ reference: 'Organization/hpsj' }] }, request: { method: 'POST', url: 'Coverage' } },
    ];
  }).flat();
  return JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry });
}
