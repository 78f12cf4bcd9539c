import type { Bundle, CareTeam, Condition, Coverage, CoverageEligibilityResponse, DocumentReference, Library, MeasureReport, Organization, Parameters, Patient, Practitioner, PractitionerRole, Resource, ServiceRequest, Task } from 'fhir/r4.js';

/** What the UI needs from the FHIR server; the UI never calls fetch itself. */
export interface FhirRequester {
  request<T>(url: string, init?: { method?: string; body?: string; headers?: Record<string, string> }): Promise<T>;
  patientId?: string;
  fhirUser?: string;
}

export const SYSTEMS = {
  reason: 'https://second-opinion.example.org/fhir/CodeSystem/second-opinion-reason',
  nucc: 'http://nucc.org/provider-taxonomy',
  cin: 'urn:oid:2.16.840.1.113883.3.1241.1.1',
  requestId: 'https://second-opinion.example.org/fhir/sid/second-opinion-request',
  careQuestioned: 'https://second-opinion.example.org/fhir/StructureDefinition/care-questioned',
  transportation: 'https://second-opinion.example.org/fhir/StructureDefinition/transportation-needed',
  language: 'https://second-opinion.example.org/fhir/StructureDefinition/preferred-language',
  caseProfile: 'https://second-opinion.example.org/fhir/StructureDefinition/second-opinion-task',
  grievanceCode: 'https://second-opinion.example.org/fhir/CodeSystem/second-opinion-category|second-opinion-grievance',
  grievanceProfile: 'https://second-opinion.example.org/fhir/StructureDefinition/second-opinion-grievance',
  userRole: 'https://second-opinion.example.org/fhir/CodeSystem/user-role',
};

/** One page of a search: its resources and the server's links to the pages before and after it. */
export interface Page<T> {
  items: T[];
  next?: string;
  previous?: string;
}

export interface GrievanceForm {
  category: string;
  description: string;
  expedited: boolean;
  /** The request it is about (ServiceRequest/…), if any. */
  regarding?: string;
}

export interface Banner {
  name: string;
  birthDate?: string;
  cin?: string;
  plan?: string;
  pcp?: string;
  /** The member's IPA / medical group. */
  group?: string;
  /** The plan's own definition of urgent (from its published criteria). */
  urgentDefinition?: string;
  coverageId?: string;
  careTeam: { reference: string; display: string }[];
}

export interface RequestForm {
  /** Conditions and documents from the record that support the request. */
  supporting?: string[];
  reason: string;
  reasonText: string;
  careQuestioned: string;
  specialty: string;
  performer?: string;
  urgent: boolean;
  transportation: boolean;
  language: string;
}

const json = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/fhir+json' } });
/** A case and what its card shows: the member, who asked, the professional asked for, the plan (its id). */
export interface CaseView {
  task: Task;
  request?: ServiceRequest;
  patient?: Patient;
  requester?: Resource;
  performer?: PractitionerRole;
  planId?: string;
}

/** A person's or organization's name as a reader would say it; its reference when it has none. */
export function nameOf(r: Resource | undefined): string {
  if (!r) return '';
  if (r.resourceType === 'PractitionerRole') return (r as PractitionerRole).practitioner?.display ?? `PractitionerRole/${r.id}`;
  if (r.resourceType === 'Organization') return (r as Organization).name ?? `Organization/${r.id}`;
  const name = (r as Patient | Practitioner).name?.[0];
  const text = name?.text ?? [name?.prefix?.join(' '), name?.given?.join(' '), name?.family].filter(Boolean).join(' ');
  return text || `${r.resourceType}/${r.id}`;
}

/** Bytes as base64, a chunk at a time (spreading a large array into String.fromCharCode overflows the stack). */
export function base64Of(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const entries = <T extends Resource>(b: Bundle) => (b.entry ?? []).map((e) => e.resource as T).filter(Boolean);

export class SecondOpinionApi {
  /** `member`: the member's own view, which leaves out the copies of their letters sent to providers. */
  constructor(
    private readonly fhir: FhirRequester,
    private readonly audience: 'member' | 'provider' = 'provider',
  ) {}

  async banner(patientId: string): Promise<Banner> {
    const patient = await this.fhir.request<Patient>(`Patient/${patientId}`);
    const coverage = entries<Coverage>(await this.fhir.request<Bundle>(`Coverage?beneficiary=Patient/${patientId}&status=active`))[0];
    const plan = coverage?.payor[0]?.reference ? await this.fhir.request<Organization>(coverage.payor[0].reference).catch(() => undefined) : undefined;
    const teams = entries<CareTeam>(await this.fhir.request<Bundle>(`CareTeam?patient=${patientId}`));
    const careTeam = teams.flatMap((t) => t.participant ?? []).map((p) => ({ reference: p.member?.reference ?? '', display: `${p.role?.[0]?.text ?? 'Care team'}: ${p.member?.reference ?? ''}` })).filter((p) => p.reference);
    const pcpRef = patient.generalPractitioner?.[0]?.reference;
    const pcpRole = pcpRef?.startsWith('PractitionerRole/') ? await this.fhir.request<PractitionerRole>(pcpRef).catch(() => undefined) : undefined;
    const planId = plan?.identifier?.find((i) => i.system?.endsWith('/sid/plan'))?.value;
    const criteria = planId ? await this.fhir.request<Library>(`Library/second-opinion-criteria-${planId}`).catch(() => undefined) : undefined;
    return {
      name: [patient.name?.[0]?.given?.join(' '), patient.name?.[0]?.family].filter(Boolean).join(' '),
      birthDate: patient.birthDate,
      cin: patient.identifier?.find((i) => i.system === SYSTEMS.cin)?.value,
      plan: plan?.name,
      pcp: pcpRole?.practitioner?.display ?? pcpRef,
      group: coverage?.class?.find((c) => c.type.coding?.some((x) => x.code === 'group'))?.value,
      urgentDefinition: criteria?.description?.split('Urgent means: ')[1],
      coverageId: coverage?.id,
      careTeam,
    };
  }

  private bundle(patientId: string, coverageId: string, requester: string, form: RequestForm): Bundle {
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: SYSTEMS.requestId, value: crypto.randomUUID() }],
      status: 'draft',
      intent: 'order',
      priority: form.urgent ? 'urgent' : 'routine',
      subject: { reference: `Patient/${patientId}` },
      requester: { reference: requester },
      insurance: [{ reference: `Coverage/${coverageId}` }],
      reasonCode: [{ coding: [{ system: SYSTEMS.reason, code: form.reason }], text: form.reasonText || undefined }],
      performerType: { coding: [{ system: SYSTEMS.nucc, code: form.specialty }] },
      performer: form.performer ? [{ reference: form.performer }] : undefined,
      supportingInfo: form.supporting?.length ? form.supporting.map((reference) => ({ reference })) : undefined,
      extension: [
        ...(form.careQuestioned ? [{ url: SYSTEMS.careQuestioned, valueReference: { reference: form.careQuestioned } }] : []),
        { url: SYSTEMS.transportation, valueBoolean: form.transportation },
        { url: SYSTEMS.language, valueCode: form.language },
      ],
    };
    return { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] };
  }

  checkAuthorization(patientId: string, coverageId: string, requester: string, form: RequestForm): Promise<CoverageEligibilityResponse> {
    return this.fhir.request('CoverageEligibilityRequest/$submit', json(this.bundle(patientId, coverageId, requester, form)));
  }

  async submit(patientId: string, coverageId: string, requester: string, form: RequestForm): Promise<Task> {
    const result = await this.fhir.request<Bundle>('ServiceRequest/$submit', json(this.bundle(patientId, coverageId, requester, form)));
    return entries<Task>(result).find((r) => r.resourceType === 'Task')!;
  }

  /** Cases only (not the information-request Tasks that belong to them), each with the resources a reader of its card needs. */
  async cases(query: string): Promise<CaseView[]> {
    const includes = ['_include=Task:focus', '_include=Task:patient', '_include=Task:requester', '_include=Task:owner', '_include:iterate=ServiceRequest:performer'].join('&');
    const b = await this.fhir.request<Bundle>(`Task?${query}&_profile=${encodeURIComponent(SYSTEMS.caseProfile)}&${includes}&_count=50`);
    const byRef = new Map(entries<Resource>(b).map((r) => [`${r.resourceType}/${r.id}`, r]));
    const get = <T extends Resource>(ref: string | undefined) => (ref ? (byRef.get(ref) as T | undefined) : undefined);
    return entries<Task>(b).filter((r) => r.resourceType === 'Task' && (b.entry ?? []).some((e) => e.resource === r && e.search?.mode !== 'include')).map((task) => {
      const request = get<ServiceRequest>(task.focus?.reference);
      const owner = get<Organization>(task.owner?.reference);
      return {
        task,
        request,
        patient: get<Patient>(task.for?.reference),
        requester: get<Resource>(task.requester?.reference),
        performer: get<PractitionerRole>(request?.performer?.[0]?.reference),
        planId: owner?.identifier?.find((i) => i.system?.endsWith('/sid/plan'))?.value ?? task.owner?.reference?.split('/')[1],
      };
    });
  }

  /** The requests a practitioner made, as a Practitioner (fhirUser) or through one of their PractitionerRoles; latest first. */
  async requestsBy(practitioner: string): Promise<CaseView[]> {
    const who = encodeURIComponent(practitioner);
    const [direct, throughRole] = await Promise.all([this.cases(`requester=${who}&_sort=-authored-on`), this.cases(`requester:PractitionerRole.practitioner=${who}&_sort=-authored-on`)]);
    const byId = new Map([...direct, ...throughRole].map((c) => [c.task.id, c]));
    return [...byId.values()].sort((a, b) => (b.task.authoredOn ?? '').localeCompare(a.task.authoredOn ?? ''));
  }

  /** The steps a case has been through, in order, each with when it was reached (from the Task's versions). */
  async timeline(taskId: string): Promise<{ step: string; at?: string }[]> {
    const versions = entries<Task>(await this.fhir.request<Bundle>(`Task/${taskId}/_history?_count=100`));
    const when = (t: Task) => t.lastModified ?? t.meta?.lastUpdated ?? '';
    const steps: { step: string; at?: string }[] = [];
    for (const version of versions.sort((a, b) => when(a).localeCompare(when(b)))) {
      const step = version.businessStatus?.coding?.[0]?.code;
      if (step && steps.at(-1)?.step !== step) steps.push({ step, at: when(version) || undefined });
    }
    return steps;
  }

  /** Professionals of a specialty (NUCC code) to choose from, by name. */
  async professionals(specialty: string): Promise<{ reference: string; display: string }[]> {
    const roles = entries<PractitionerRole>(await this.fhir.request<Bundle>(`PractitionerRole?specialty=${encodeURIComponent(`${SYSTEMS.nucc}|${specialty}`)}&active=true&_count=30`));
    return roles.map((r) => ({ reference: `PractitionerRole/${r.id}`, display: nameOf(r) }));
  }

  /** What each reference is, as the reader would name it (a condition, a document); the reference itself when it cannot be read. */
  async labels(references: string[]): Promise<string[]> {
    return Promise.all(references.map(async (ref) => {
      const r = await this.fhir.request<Resource>(ref).catch(() => undefined);
      if (r?.resourceType === 'Condition') return `Condition: ${(r as Condition).code?.text ?? (r as Condition).code?.coding?.[0]?.display ?? r.id}`;
      if (r?.resourceType === 'DocumentReference') return `Document: ${(r as DocumentReference).description ?? (r as DocumentReference).type?.text ?? r.id}`;
      return r ? nameOf(r) : ref;
    }));
  }

  /** The member's preferred language (its two-letter code), if the record gives one. */
  async preferredLanguage(patientId: string): Promise<string | undefined> {
    const patient = await this.fhir.request<Patient>(`Patient/${patientId}`);
    const communication = patient.communication?.find((c) => c.preferred) ?? patient.communication?.[0];
    return communication?.language.coding?.[0]?.code?.slice(0, 2).toLowerCase();
  }

  /** The letters and reports of a case (its ServiceRequest) or a grievance (its Task): HTML (the plan's letters) and plain text are shown; other types are only named. */
  async letters(regarding: string): Promise<CaseDocument[]> {
    const docs = entries<DocumentReference>(await this.fhir.request<Bundle>(`DocumentReference?related=${regarding}&_count=50`));
    const providerCopy = (d: DocumentReference) => (d.category ?? []).some((c) => c.text === 'provider-copy');
    return docs.filter((d) => this.audience === 'provider' || !providerCopy(d)).map((d) => {
      const attachment = d.content[0]?.attachment;
      const contentType = (attachment?.contentType ?? '').split(';')[0].trim().toLowerCase();
      const kind = contentType === 'text/html' ? 'html' : contentType === 'text/plain' ? 'text' : 'other';
      return { title: d.description ?? d.type?.text ?? 'Document', kind, contentType, body: kind === 'other' ? '' : atobUtf8(attachment?.data ?? '') };
    });
  }

  /** Conditions and documents in the patient's record, to pick as supporting information. */
  async record(patientId: string): Promise<{ reference: string; display: string }[]> {
    const conditions = entries<Condition>(await this.fhir.request<Bundle>(`Condition?patient=${patientId}&_count=50`));
    const documents = entries<DocumentReference>(await this.fhir.request<Bundle>(`DocumentReference?patient=${patientId}&_count=20`));
    return [
      ...conditions.map((c) => ({ reference: `Condition/${c.id}`, display: `Condition: ${c.code?.text ?? c.code?.coding?.[0]?.display ?? c.id}` })),
      ...documents.filter((d) => !d.context?.related?.length).map((d) => ({ reference: `DocumentReference/${d.id}`, display: `Document: ${d.description ?? d.type?.text ?? d.id}` })),
    ];
  }

  /** Answers an information request by attaching a document (R11, BSP D.IV). */
  async answerInformationRequest(taskId: string, patientId: string, file: { name: string; contentType: string; base64: string }): Promise<Task> {
    const doc = await this.fhir.request<DocumentReference>('DocumentReference', json({
      resourceType: 'DocumentReference',
      status: 'current',
      description: file.name,
      subject: { reference: `Patient/${patientId}` },
      content: [{ attachment: { contentType: file.contentType || 'application/octet-stream', title: file.name, data: file.base64 } }],
    }));
    return this.reviewAction(taskId, 'answer-info', [{ name: 'document', valueReference: { reference: `DocumentReference/${doc.id}` } }]);
  }

  /** The committee report (R19) for a period. */
  committeeReport(period: string): Promise<MeasureReport> {
    return this.fhir.request(`$second-opinion-report?period=${encodeURIComponent(period)}`);
  }

  /** R17: grievances (their Tasks), e.g. a member's own or the open ones by due date. */
  async grievances(query: string): Promise<Task[]> {
    return (await this.grievancePage(query, 50)).items;
  }

  /** R17: a page of grievances (`count` of them at most), with the links to the pages before and after. */
  async grievancePage(query: string, count: number): Promise<Page<Task>> {
    return this.page(`Task?code=${encodeURIComponent(SYSTEMS.grievanceCode)}&_profile=${encodeURIComponent(SYSTEMS.grievanceProfile)}&${query}&_count=${count}`);
  }

  /** The page a search URL, or a page link the server gave, names. */
  async page<T extends Resource>(url: string): Promise<Page<T>> {
    const bundle = await this.fhir.request<Bundle>(url);
    const link = (relation: string) => bundle.link?.find((l) => l.relation === relation)?.url;
    return { items: entries<T>(bundle), next: link('next'), previous: link('previous') ?? link('prev') };
  }

  /** The plan-staff roles (user-role codes) of the signed-in practitioner, from their PractitionerRoles. */
  async staffRoles(): Promise<string[]> {
    if (!this.fhir.fhirUser?.startsWith('Practitioner/')) return [];
    const roles = entries<PractitionerRole>(await this.fhir.request<Bundle>(`PractitionerRole?practitioner=${encodeURIComponent(this.fhir.fhirUser)}&_count=50`));
    return [...new Set(roles.filter((r) => r.active !== false).flatMap((r) => r.code ?? []).flatMap((c) => c.coding ?? []).filter((c) => c.system === SYSTEMS.userRole && c.code).map((c) => c.code!))];
  }

  /** R17 (PHC VI.E): a grievance about one of the member's requests, or none. */
  fileGrievance(form: GrievanceForm): Promise<Task> {
    const parameter: Parameters['parameter'] = [
      { name: 'category', valueCode: form.category },
      { name: 'description', valueString: form.description },
      { name: 'expedited', valueBoolean: form.expedited },
      ...(form.regarding ? [{ name: 'case', valueReference: { reference: form.regarding } }] : []),
    ];
    return this.fhir.request('Task/$file-grievance', json({ resourceType: 'Parameters', parameter }));
  }

  /** A step of a case (`approve`...) or of a grievance (`acknowledge-grievance`, `resolve-grievance`). */
  reviewAction(taskId: string, action: string, parameter: Parameters['parameter']): Promise<Task> {
    return this.fhir.request(`Task/${taskId}/$${action}`, json({ resourceType: 'Parameters', parameter }));
  }
}

function atobUtf8(b64: string): string {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** What the user is told about a failed call, and whether they must launch the app again. */
export interface ErrorDescription {
  message: string;
  sessionEnded: boolean;
}

/**
 * The readable message of a failed call: the OperationOutcome's diagnostics (or details text) when there is one.
 * fhirclient's HttpError has read the body into its message: the status line, the URL, a blank line, then the
 * JSON; a 401 (or fhirclient's own "launch again" errors) means the session has ended.
 */
export function describeError(err: unknown): ErrorDescription {
  const { status, message = String(err), body } = (err ?? {}) as { status?: number; message?: string; body?: unknown };
  if (status === 401 || /No 'state' parameter found|No state found|session has expired|re-?launch the app/i.test(message)) {
    return { message: 'Your session has ended (or the app was opened without a launch). Please launch the app again.', sessionEnded: true };
  }
  const issues = outcomeIssues(typeof body === 'string' ? safeParse(body) : body ?? safeParse(message.slice(message.indexOf('\n\n') + 2)));
  if (issues.length) return { message: issues.join(' '), sessionEnded: false };
  if (status) return { message: `The server could not do this (${status}${(err as { statusText?: string }).statusText ? ` ${(err as { statusText?: string }).statusText}` : ''}).`, sessionEnded: false };
  if (/Failed to fetch|NetworkError/i.test(message)) return { message: 'The server could not be reached. Check the connection and try again.', sessionEnded: false };
  return { message, sessionEnded: false };
}

export function errorMessage(err: unknown): string {
  return describeError(err).message;
}

/** Each issue of an OperationOutcome as a sentence. */
function outcomeIssues(outcome: unknown): string[] {
  const issues = (outcome as { resourceType?: string; issue?: { diagnostics?: string; details?: { text?: string } }[] } | undefined)?.issue ?? [];
  return issues.map((i) => i.diagnostics ?? i.details?.text ?? '').filter(Boolean).map((text) => (/[.!?]$/.test(text) ? text : `${text}.`));
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

export interface CaseDocument {
  title: string;
  kind: 'html' | 'text' | 'other';
  contentType: string;
  body: string;
}
