import type { Binary, Coverage, DocumentReference, Organization, Patient, PractitionerRole, Reference, Resource, ServiceRequest, Task } from 'fhir/r4.js';
import type { PlanProfile } from '../domain/plans.js';
import { type CaseStep, type Delegation, delegationFor, type ReviewAction } from '../domain/reviewPath.js';
import { forbidden, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import type { AccessContext } from '../fhir/request.js';
import { EXTENSIONS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { isPlanStaff, worksForPlan } from './planStaff.js';

// Who may act on a case, and what they may bring to it, beyond the review path's roles (R1, R11, R14, R18).

/**
 * What the caller's token allows on the resources an operation reads on its behalf, judged for the
 * operation's interaction (fhir/guard.ts requireAccess, mayAccess): the patient compartment of a
 * patient-bound grant, the member's own record for a member.
 */
export interface CallerAccess {
  /** Throws unless the caller may use the operation's interaction on the resource it acts on (the case Task): 404 when it may not even see it, as for a missing id; 403 when it may see but not change it. */
  require(resource: Resource): void;
  /** Throws 404, as for a missing id, unless the caller may read the resource (what the operation reads to act: the request, the member). */
  requireRead(resource: Resource): void;
  /** Whether the caller may read the resource. */
  may(resource: Resource): boolean;
  /** Throws 404, as for a missing id, unless the resource is about a patient the caller may see (workflow/memberAccess.ts); `store` is the transaction's. */
  requireAboutVisiblePatient(resource: Resource, store: FhirStore): Promise<void>;
  /** `Patient/x` for each patient compartment the resource is in. */
  compartmentsOf(resource: Resource): string[];
}

export interface CaseFiles {
  task: Task;
  serviceRequest: ServiceRequest;
  patient: Patient;
  plan: PlanProfile;
  coverage: Coverage;
  payor: Organization;
  insurer: Reference;
  step: CaseStep;
  /** The member's IPA/medical group (Coverage.class `group`): whom the plan may have delegated UM to (R18). */
  memberGroup?: string;
}

/**
 * Party checks beyond the role: the report comes from the authorized professional, withdrawal from
 * the member or requester, plan staff act only on their own plan's cases (whatever the token kind:
 * the fhirUser is the practitioner), and a backend client only under the plan's delegation to the
 * member's group (R18). Returns that delegation, if the actor acts under one.
 */
export async function checkParty(tx: FhirStore, c: CaseFiles, action: ReviewAction, actor: AccessContext): Promise<Delegation | undefined> {
  if (isPlanStaff(actor) && action !== 'post-report' && !(c.insurer.reference && (await worksForPlan(tx, actor, c.insurer.reference)))) {
    throw forbidden(`Only ${c.plan.name} staff may ${action} on this case`);
  }
  let delegation: Delegation | undefined;
  if (actor.kind === 'system' || actor.roles.includes('delegated-group')) {
    delegation = delegationFor(c.plan, actor.organization, c.memberGroup);
    if (!delegation) throw forbidden(`${c.plan.name} has not delegated decisions on this member's cases to the organization client ${actor.clientId} acts for (R18, BSP D.IX)`);
  }
  if (action === 'post-report') {
    const authorized = c.task.output?.filter((o) => o.type.text === 'authorized-professional').at(-1)?.valueReference;
    const practitioner = await practitionerOf(tx, authorized);
    if (!practitioner || actor.fhirUser !== practitioner) throw forbidden('Only the authorized second-opinion professional may post the report on this case (R14)');
  }
  if (action === 'withdraw' || action === 'answer-info') {
    // The member is a member identity: the Patient itself, or a member token (the member or a
    // representative) with this patient in context. A practitioner's launch context is not enough.
    const own = actor.fhirUser === `Patient/${c.patient.id}` || (actor.roles.includes('member') && actor.patient === c.patient.id);
    const requester = (await practitionerOf(tx, c.serviceRequest.requester)) ?? c.serviceRequest.requester?.reference;
    // BSP D.IV: the treating provider asked for the information answers it.
    const asked = action === 'answer-info' ? await practitionerOf(tx, treatingProvider(c.serviceRequest, c.patient)) : undefined;
    if (!own && actor.fhirUser !== requester && !(asked && actor.fhirUser === asked) && !actor.roles.includes('um-clinician')) {
      throw forbidden(`Only the member, the requester${action === 'answer-info' ? ' or the treating provider asked' : ''} may ${action} on this case`);
    }
  }
  return delegation;
}

const isPractitioner = (ref: Reference | undefined): ref is Reference => ['PractitionerRole', 'Practitioner'].includes(parseLiteral(ref?.reference)?.[0] ?? '');

/**
 * BSP D.IV "the UM Clinician will contact the treating provider": the professional whose care is
 * questioned, else the member's PCP, else the requester when a practitioner. Never the member.
 */
export function treatingProvider(sr: ServiceRequest, patient: Patient): Reference | undefined {
  const careQuestioned = sr.extension?.find((e) => e.url === EXTENSIONS.careQuestioned)?.valueReference;
  return [careQuestioned, patient.generalPractitioner?.[0], sr.requester].find(isPractitioner);
}

/**
 * Who is sent a decision or extension notice, each once: the member, the requester, the authorized
 * professional, and the treating provider when no provider asked, so that a provider is always told
 * (BSP D.V "both the member and provider"; H&S 1367.01(h)(3)).
 */
export function noticeRecipients(sr: ServiceRequest, patient: Patient, authorized?: Reference): Reference[] {
  const provider = isPractitioner(sr.requester) ? undefined : treatingProvider(sr, patient);
  return uniqueReferences([{ reference: `Patient/${patient.id}` }, sr.requester, authorized, provider]);
}

export function uniqueReferences(refs: (Reference | undefined)[]): Reference[] {
  const present = refs.filter((r): r is Reference => Boolean(r?.reference));
  return present.filter((r, i) => present.findIndex((x) => x.reference === r.reference) === i);
}

/**
 * BSP D.IV answers: each document must be a stored DocumentReference (or Binary) about the case's
 * member that the caller may read. One message for "absent" and "not yours", so nothing is learnt.
 */
export async function memberDocuments(tx: FhirStore, c: CaseFiles, documents: Reference[], access: CallerAccess): Promise<Reference[]> {
  const member = `Patient/${c.patient.id}`;
  const out: Reference[] = [];
  for (const [i, d] of documents.entries()) {
    const ref = typeof d?.reference === 'string' ? d.reference : undefined;
    const literal = parseLiteral(ref);
    const refused = () => unprocessable(`document[${i}] must reference a DocumentReference or Binary about this case's member that you may read`, [`document[${i}]`]);
    if (!literal || (literal[0] !== 'DocumentReference' && literal[0] !== 'Binary')) throw refused();
    const found = await tx.find(literal[0], literal[1]);
    if (!found || !access.may(found) || !(await isAbout(tx, found, member, access))) throw refused();
    out.push({ reference: `${literal[0]}/${literal[1]}` });
  }
  return out;
}

/** A DocumentReference is about its subject; a Binary about its securityContext (the member, or a resource of theirs). */
async function isAbout(tx: FhirStore, resource: Resource, member: string, access: CallerAccess): Promise<boolean> {
  if (resource.resourceType === 'DocumentReference') return (resource as DocumentReference).subject?.reference === member;
  const context = (resource as Binary).securityContext?.reference;
  if (context === member) return true;
  const literal = parseLiteral(context);
  const target = literal ? await tx.find(literal[0], literal[1]) : undefined;
  return target !== undefined && access.may(target) && access.compartmentsOf(target).includes(member);
}

/** A stored PractitionerRole or Practitioner, as a reference with its display. */
export async function practitionerReference(tx: FhirStore, ref: Reference): Promise<Reference | undefined> {
  const literal = parseLiteral(typeof ref?.reference === 'string' ? ref.reference : undefined);
  if (!literal || (literal[0] !== 'PractitionerRole' && literal[0] !== 'Practitioner')) return undefined;
  const found = await tx.find(literal[0], literal[1]);
  if (!found) return undefined;
  const display = found.resourceType === 'PractitionerRole' ? (found as PractitionerRole).practitioner?.display : undefined;
  return { reference: `${literal[0]}/${literal[1]}`, ...(display ? { display } : {}) };
}

export async function practitionerOf(tx: FhirStore, ref: Reference | undefined): Promise<string | undefined> {
  const literal = parseLiteral(ref?.reference);
  if (!literal) return undefined;
  if (literal[0] === 'Practitioner') return ref!.reference;
  if (literal[0] !== 'PractitionerRole') return undefined;
  const role = (await tx.find('PractitionerRole', literal[1])) as PractitionerRole | undefined;
  return role?.practitioner?.reference;
}

