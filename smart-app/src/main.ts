import FHIR from 'fhirclient';
import type { DocumentReference, MeasureReportGroup, Patient, Task } from 'fhir/r4.js';
import type { UserRole } from '../../server/src/fhir/request.js';
import { type Banner, base64Of, type CaseView, type FhirRequester, nameOf, type RequestForm, SecondOpinionApi, SYSTEMS } from './api.js';
import { deskPageSize, grievanceDesk, memberGrievances } from './grievances.js';
import { staffActions, stepOf, userRoles, withdrawAction } from './review.js';
import { clearError, clearInvalid, dueLine, el, esc, lettersBox, localDateTime, progress, showError, showInvalid } from './ui.js';

const REASONS: [string, string][] = [
  ['surgery-necessity', 'Questions the need for recommended surgery or treatment'],
  ['serious-condition', 'Serious condition: questions the diagnosis or plan of care'],
  ['unclear-diagnosis', 'Unclear or conflicting diagnosis'],
  ['not-improving', 'Treatment is not improving the condition'],
  ['persistent-concerns', 'Serious concerns persist after following the plan'],
  ['other', 'Other (describe)'],
];
/** The same reasons as the member says them. */
const MEMBER_REASONS: [string, string][] = [
  ['surgery-necessity', 'I am not sure I need the surgery or treatment my doctor recommends'],
  ['serious-condition', 'I have a serious condition and question my diagnosis or treatment plan'],
  ['unclear-diagnosis', 'My diagnosis is unclear or my doctors disagree'],
  ['not-improving', 'My treatment is not making me better'],
  ['persistent-concerns', 'I followed the plan and still have serious concerns'],
  ['other', 'Something else (tell us below)'],
];
const SPECIALTIES: [string, string][] = [
  ['207RC0000X', 'Cardiology'], ['207X00000X', 'Orthopaedic surgery'], ['207RX0202X', 'Medical oncology'], ['2084N0400X', 'Neurology'], ['2084P0800X', 'Psychiatry'], ['207Q00000X', 'Family medicine (PCP)'],
];
const STEP_LABELS: Record<string, string> = {
  received: 'Received', 'um-review': 'Utilization management review', 'info-requested': 'Information requested', 'info-received': 'Information received',
  'medical-director-review': 'Medical Director review', 'consultative-review': 'Consultative review', approved: 'Approved', modified: 'Modified',
  'transport-arranged': 'Transportation arranged', denied: 'Denied', withdrawn: 'Withdrawn', completed: 'Completed (report received)',
};
const labelOf = (list: [string, string][], code: string | undefined) => list.find(([c]) => c === code)?.[1] ?? code ?? '';
const isOpen = (t: Task) => t.status !== 'completed' && t.status !== 'rejected' && t.status !== 'cancelled' && t.status !== 'accepted';
const STAFF_QUEUE = 'status=requested,in-progress,on-hold,received&_sort=due';

async function main(): Promise<void> {
  const app = document.getElementById('app')!;
  try {
    const client = await FHIR.oauth2.ready();
    const fhir: FhirRequester = {
      request: (url, init) => client.request({ url, method: init?.method ?? 'GET', body: init?.body, headers: init?.headers }),
      patientId: client.patient.id ?? undefined,
      fhirUser: client.getFhirUser() ?? undefined,
    };
    const mode = sessionStorage.getItem('so-mode') ?? 'physician';
    const api = new SecondOpinionApi(fhir, mode === 'member' ? 'member' : 'provider');
    if (mode === 'staff') return await staffView(app, api);
    if (mode === 'consultant') return await consultantView(app, api);
    if (mode === 'grievances') return await grievanceDesk(app, api, deskPageSize(sessionStorage.getItem('so-page-size')));
    if (!fhir.patientId) throw new Error('No patient is in context: launch the app from the patient’s record.');
    const banner = await api.banner(fhir.patientId);
    document.getElementById('banner')!.innerHTML = bannerHtml(banner);
    await physicianView(app, api, fhir, banner, mode === 'member' ? 'member' : 'treating-provider');
    if (mode === 'member') {
      memberRights(app);
      await memberGrievances(app, api, fhir.patientId);
    }
  } catch (err) {
    // Never a stale "Loading…" above the error.
    for (const loading of app.querySelectorAll(':scope > p[role=status]')) loading.remove();
    showError(app, err);
  }
}

function bannerHtml(b: Banner): string {
  return `<strong>${esc(b.name)}</strong> · born ${esc(b.birthDate)} · Medi-Cal ID ${esc(b.cin)} · ${esc(b.plan)} · PCP ${esc(b.pcp)} · medical group ${esc(b.group ?? 'none')}`;
}

const value = (id: string) => (document.getElementById(id) as HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | null)?.value ?? '';
const checked = (id: string) => (document.getElementById(id) as HTMLInputElement | null)?.checked ?? false;

/** The physician's form: every field of the request, in the terms of the rules. */
function physicianForm(banner: Banner): string {
  return `<label for="reason">Reason (R2)</label><select id="reason" required>${REASONS.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="reason-text">Details</label><textarea id="reason-text" rows="2"></textarea>
    <label for="care-questioned">Whose care is questioned</label><select id="care-questioned">${banner.careTeam.map((c) => `<option value="${esc(c.reference)}">${esc(c.display)}</option>`).join('')}</select>
    <label for="specialty">Specialty wanted</label><select id="specialty">${SPECIALTIES.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="performer">Professional requested (PractitionerRole, optional)</label><input id="performer" placeholder="PractitionerRole/…" />
    <fieldset><legend>Supporting information from the record</legend><div id="supporting">Loading…</div></fieldset>
    <label><input type="checkbox" id="urgent" aria-describedby="urgent-def" /> Urgent</label><p id="urgent-def" class="note">${esc(banner.urgentDefinition ?? 'Waiting the standard time could seriously jeopardize the member’s life, health or function.')}</p>
    <label><input type="checkbox" id="transportation" /> The member needs transportation (R13)</label>`;
}

/** The member's form: what they may ask, in plain words; the plan finds the professional when they name none. */
function memberForm(banner: Banner): string {
  return `<label for="reason">Why do you want a second opinion?</label><select id="reason" required>${MEMBER_REASONS.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="reason-text">Tell us more (optional)</label><textarea id="reason-text" rows="3"></textarea>
    <label for="specialty">What kind of doctor do you want to see?</label><select id="specialty">${SPECIALTIES.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="preferred-doctor">A doctor you would like to see (optional)</label><input id="preferred-doctor" autocomplete="off" />
    <p class="note">Leave it empty and we will find a qualified doctor in our network for you.</p>
    <label><input type="checkbox" id="urgent" aria-describedby="urgent-def" /> My health is at serious risk if I wait</label><p id="urgent-def" class="note">${esc(banner.urgentDefinition ?? 'Waiting the standard time could seriously harm your life, health or ability to function.')}</p>
    <label><input type="checkbox" id="transportation" /> I need a ride to the appointment (free of charge)</label>`;
}

async function physicianView(app: HTMLElement, api: SecondOpinionApi, fhir: FhirRequester, banner: Banner, role: UserRole): Promise<void> {
  const member = role === 'member';
  app.innerHTML = `
  <section aria-labelledby="req-h"><h2 id="req-h">${member ? 'Ask for a second opinion' : 'Request a second opinion'}</h2>
  <form id="request-form" novalidate>
    ${member ? memberForm(banner) : physicianForm(banner)}
    <label for="language">${member ? 'Language for your letters' : 'Preferred language for letters'}</label><select id="language"><option value="en">English</option><option value="es">Español</option></select>
    <div><button type="button" id="check">${member ? 'Do I need approval?' : 'Check authorization'}</button><button type="submit" id="submit">${member ? 'Send my request' : 'Submit request'}</button></div>
  </form><div id="answer" aria-live="polite"></div></section>
  <p id="action-status" role="status" aria-live="polite"></p>
  <section aria-labelledby="cases-h"><h2 id="cases-h">${member ? 'My requests' : 'Requests for this patient'}</h2><div id="cases"></div></section>`;
  const formEl = document.getElementById('request-form') as HTMLFormElement;
  const language = await api.preferredLanguage(fhir.patientId!).catch(() => undefined);
  if (language === 'en' || language === 'es') (document.getElementById('language') as HTMLSelectElement).value = language;
  const form = (): RequestForm => ({
    reason: value('reason'),
    reasonText: [value('reason-text').trim(), member && value('preferred-doctor').trim() ? `Doctor I would like to see: ${value('preferred-doctor').trim()}` : ''].filter(Boolean).join('\n'),
    careQuestioned: value('care-questioned'),
    specialty: value('specialty'),
    performer: member ? undefined : value('performer').trim() || undefined,
    urgent: checked('urgent'),
    transportation: checked('transportation'),
    language: value('language'),
    supporting: [...document.querySelectorAll<HTMLInputElement>('#supporting input:checked')].map((i) => i.value),
  });
  if (!member) {
    const record = await api.record(fhir.patientId!);
    document.getElementById('supporting')!.innerHTML = record.length
      ? record.map((r, i) => `<label><input type="checkbox" id="support-${i}" value="${esc(r.reference)}" /> ${esc(r.display)}</label>`).join('')
      : 'Nothing in the record.';
  }
  const answer = document.getElementById('answer')!;
  const requester = fhir.fhirUser ?? '';
  let mine: HTMLElement | undefined;
  const casesBox = document.getElementById('cases')!;
  const announce = actionStatus();
  /** After any action, both lists: this patient's requests and, for a physician, their own (a withdrawal shows in each). */
  const refresh = async (message?: string) => {
    await renderCases(api, `patient=${fhir.patientId}&_sort=-authored-on`, casesBox, cardActions);
    if (mine) await renderCaseList(api, api.requestsBy(fhir.fhirUser!), mine);
    if (message) announce(message);
  };
  const cardActions = (c: CaseView): HTMLElement => {
    const box = el('div');
    box.append(infoAnswer(api, fhir.patientId!, c.task, () => refresh('The information is sent.')), withdrawAction(api, c, role, fhir.fhirUser, refresh));
    return box;
  };
  // A checked answer is about the form as it was: it goes when the form changes.
  formEl.addEventListener('input', () => {
    answer.querySelector('.check-answer')?.remove();
    clearError(answer);
    clearInvalid(formEl);
  });
  const incomplete = (): boolean => {
    if (value('reason') === 'other' && !value('reason-text').trim()) {
      showInvalid(formEl, document.getElementById('reason-text')!, member ? 'Tell us why you want a second opinion.' : 'Describe the reason: “Other” needs details.');
      return true;
    }
    return false;
  };
  const check = document.getElementById('check') as HTMLButtonElement;
  check.addEventListener('click', async () => {
    if (incomplete()) return;
    await progress(answer, async () => {
      const r = await api.checkAuthorization(fhir.patientId!, banner.coverageId!, requester, form());
      const needed = r.insurance?.[0]?.item?.[0]?.authorizationRequired;
      answer.innerHTML = `<div class="notice check-answer"><p><strong>${needed ? 'Authorization needed' : 'No authorization needed'}</strong></p><p>${esc(r.disposition)}</p></div>`;
    }, formEl);
  });
  formEl.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (incomplete()) return;
    await progress(answer, async () => {
      const task = await api.submit(fhir.patientId!, banner.coverageId!, requester, form());
      answer.innerHTML = `<div class="notice" id="submitted">Request received. Status: <strong>${esc(task.businessStatus?.coding?.[0]?.code)}</strong>; ${dueLine('decision due', task.restriction?.period?.end, isOpen(task)).replace(/^<p[^>]*>|<\/p>$/g, '')}.</div>`;
      await refresh();
    }, formEl);
  });
  await refresh();
  if (!member && fhir.fhirUser?.startsWith('Practitioner/')) {
    const section = el('section', { 'aria-labelledby': 'mine-h' });
    section.innerHTML = '<h2 id="mine-h">My open and recent requests (all patients)</h2><div id="mine"></div>';
    app.append(section);
    mine = document.getElementById('mine')!;
    await renderCaseList(api, api.requestsBy(fhir.fhirUser), mine);
  }
}

/** A live region under the form and the queue: what the last action did. */
function actionStatus(): (message: string) => void {
  return (message) => {
    const status = document.getElementById('action-status');
    if (status) status.innerHTML = `<span class="notice">${esc(message)}</span>`;
  };
}

/** On a case waiting for information, the treating provider attaches a document and answers. */
function infoAnswer(api: SecondOpinionApi, patientId: string, task: Task, refresh: () => Promise<void>): HTMLElement {
  const box = el('div');
  if (task.businessStatus?.coding?.[0]?.code !== 'info-requested') return box;
  const id = `file-${task.id}`;
  box.innerHTML = `<label for="${id}">Information requested: attach a document</label><input type="file" id="${id}" />`;
  const input = box.querySelector('input')!;
  const send = el('button', { type: 'button', 'data-action': 'answer-info' }, 'Send the information');
  input.addEventListener('change', () => clearInvalid(box));
  send.addEventListener('click', async () => {
    const file = input.files?.[0];
    if (!file) return showInvalid(box, input, 'Choose the document to send first.');
    await progress(box, async () => {
      const base64 = base64Of(new Uint8Array(await file.arrayBuffer()));
      await api.answerInformationRequest(task.id!, patientId, { name: file.name, contentType: file.type, base64 });
      await refresh();
    }, send);
  });
  box.append(send);
  return box;
}

async function renderCases(api: SecondOpinionApi, query: string, target: HTMLElement, actions?: (c: CaseView) => HTMLElement): Promise<void> {
  await renderCaseList(api, api.cases(query), target, actions);
}

async function renderCaseList(api: SecondOpinionApi, cases: Promise<CaseView[]>, target: HTMLElement, actions?: (c: CaseView) => HTMLElement): Promise<void> {
  const list = await cases;
  target.replaceChildren(...list.map((c) => caseCard(api, c, actions)));
  if (!list.length) target.innerHTML = '<p>No requests yet.</p>';
}

/** What is known of a case at a glance: who, what, where it stands, its due, its history and its letters. */
function caseCard(api: SecondOpinionApi, c: CaseView, actions?: (c: CaseView) => HTMLElement): HTMLElement {
  const { task, request } = c;
  const step = stepOf(c);
  const card = el('div', { class: 'card case', 'data-step': step });
  card.innerHTML = `<h3>${esc(nameOf(c.patient) || 'Second opinion')} · ${esc(labelOf(SPECIALTIES, request?.performerType?.coding?.[0]?.code) || 'Second opinion')} — ${esc(step)}</h3>
    ${dueLine('Decision due', task.restriction?.period?.end, isOpen(task))}
    <dl class="facts">${caseFacts(c)}</dl>
    <details class="timeline-box"><summary>Timeline</summary><ol aria-label="Timeline" class="timeline"><li>${esc(STEP_LABELS[step] ?? step)}</li></ol></details>`;
  void fillTimeline(api, task, card.querySelector('ol')!);
  const supporting = request?.supportingInfo?.map((r) => r.reference ?? '').filter(Boolean) ?? [];
  if (supporting.length) {
    void api.labels(supporting).then((labels) => {
      card.querySelector('.supporting')!.innerHTML = labels.map((l) => `<li>${esc(l)}</li>`).join('');
    });
  }
  if (request?.id) card.append(lettersBox('Letters and reports', () => api.letters(`ServiceRequest/${request.id}`)));
  if (actions) card.append(actions(c));
  return card;
}

/** The facts of a request a reviewer decides on. */
function caseFacts(c: CaseView): string {
  const { task, request, patient } = c;
  const cin = patient?.identifier?.find((i) => i.system === SYSTEMS.cin)?.value;
  const coverage = request?.extension?.find((e) => e.url.endsWith('/ext-coverage-information'))?.extension ?? [];
  const part = (url: string) => coverage.find((e) => e.url === url);
  const outOfNetwork = part('reason')?.valueCodeableConcept?.coding?.some((x) => x.code === 'auth-out-network');
  const authorization = { 'auth-needed': 'authorization needed', 'no-auth': 'no authorization needed', satisfied: 'authorized' }[part('pa-needed')?.valueCode ?? ''] ?? '';
  const transport = request?.extension?.find((e) => e.url === SYSTEMS.transportation)?.valueBoolean;
  const rows: [string, string][] = [
    ['Member', [nameOf(patient) || task.for?.reference, cin ? `member ID ${cin}` : '', patient?.birthDate ? `born ${patient.birthDate}` : ''].filter(Boolean).join(', ')],
    ['Requested by', nameOf(c.requester) || task.requester?.display || task.requester?.reference || ''],
    ['Reason', labelOf(REASONS, request?.reasonCode?.[0]?.coding?.[0]?.code)],
    ['Details', request?.reasonCode?.[0]?.text ?? ''],
    ['Specialty', labelOf(SPECIALTIES, request?.performerType?.coding?.[0]?.code)],
    ['Professional requested', nameOf(c.performer) || request?.performer?.[0]?.reference || 'None named: the plan arranges one'],
    ['Network', [request ? (outOfNetwork ? 'Out of network' : 'In network') : '', authorization].filter(Boolean).join('; ')],
    ['Urgency', task.priority === 'urgent' || task.priority === 'stat' ? 'Urgent' : 'Routine'],
    ['Transportation', transport ? 'Needed' : ''],
  ];
  const supporting = request?.supportingInfo?.length ? `<dt>Supporting information</dt><dd><ul class="supporting">${request.supportingInfo.map((r) => `<li>${esc(r.display ?? r.reference)}</li>`).join('')}</ul></dd>` : '';
  return rows.filter(([, v]) => v).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('') + supporting;
}

async function fillTimeline(api: SecondOpinionApi, task: Task, list: HTMLElement): Promise<void> {
  const steps = await api.timeline(task.id!).catch(() => []);
  if (steps.length) list.innerHTML = steps.map((s) => `<li>${esc(STEP_LABELS[s.step] ?? s.step)}${s.at ? ` · <time datetime="${esc(s.at)}">${esc(localDateTime(s.at))}</time>` : ''}</li>`).join('');
}

/** R20: the member's rights in plain language, English and Spanish, above their own request form and cases. */
function memberRights(app: HTMLElement): void {
  const rights = el('section', { 'aria-labelledby': 'rights-h' });
  rights.innerHTML = `<h2 id="rights-h">Your rights / Sus derechos</h2>
    <p>You can ask for a second opinion from another qualified doctor, at no cost to you. / Puede pedir una segunda opinión de otro médico calificado, sin costo para usted.</p>
    <p>If we say no, you can appeal, file a grievance, or ask the DMHC Help Center (1-888-466-2219) for help. / Si decimos que no, puede apelar, presentar una queja o pedir ayuda al DMHC (1-888-466-2219).</p>`;
  app.prepend(rights);
}

/** The UM queue: open cases, earliest due first, each with what the signed-in staff member's roles allow at its step. */
async function staffView(app: HTMLElement, api: SecondOpinionApi): Promise<void> {
  app.innerHTML = '<section><h2>UM review queue</h2><p>Open cases, earliest due first.</p><p id="action-status" role="status" aria-live="polite"></p><div id="cases"></div></section><section aria-labelledby="report-h"><h2 id="report-h">Committee report (R19)</h2><div id="report"></div></section>';
  const [roles] = await Promise.all([api.staffRoles().then(userRoles), committeeReport(api, document.getElementById('report')!)]);
  const target = document.getElementById('cases')!;
  const announce = actionStatus();
  const done = async (message: string) => {
    await renderCases(api, STAFF_QUEUE, target, actions);
    announce(message);
  };
  const actions = (c: CaseView) => staffActions(api, c, roles, done);
  await renderCases(api, STAFF_QUEUE, target, actions);
}

void main();

/** R19: this quarter's figures as accessible bar charts (inline SVG with text values). */
async function committeeReport(api: SecondOpinionApi, target: HTMLElement): Promise<void> {
  const now = new Date();
  const period = `${now.getFullYear()}-Q${Math.floor(now.getMonth() / 3) + 1}`;
  try {
    const report = await api.committeeReport(period);
    const charts = (report.group ?? [])
      .filter((g) => (g.population ?? []).length > 1)
      .map((g) => {
        const rows = (g.population ?? []).map((p) => [p.code?.text ?? '', p.count ?? 0] as const);
        const max = Math.max(1, ...rows.map(([, n]) => n));
        const bars = rows.map(([label, n], i) => `<g transform="translate(0,${i * 22})"><text x="0" y="15" font-size="12">${esc(label)}</text><rect x="190" y="3" height="14" width="${Math.round((200 * n) / max)}" fill="#0b5394"></rect><text x="${195 + Math.round((200 * n) / max)}" y="15" font-size="12">${n}</text></g>`).join('');
        return `<figure><figcaption>${esc(g.code?.text)}</figcaption><svg role="img" aria-label="${esc(g.code?.text)}: ${rows.map(([l, n]) => `${esc(l)} ${n}`).join(', ')}" viewBox="0 0 440 ${rows.length * 22 + 4}" width="100%" style="max-width:440px" preserveAspectRatio="xMinYMin meet">${bars}</svg></figure>`;
      });
    const byReason = reasonOutcomeTable(report.group?.find((g) => g.code?.coding?.[0]?.code === 'by-reason-outcome'));
    target.innerHTML = `<p>Period ${esc(period)}</p>${charts.join('') || '<p>No cases yet this quarter.</p>'}${byReason}`;
  } catch (err) {
    showError(target, err);
  }
}

/** R19, BSP D.X: the outcomes of each reason category, as a table (reasons by row, outcomes by column). */
function reasonOutcomeTable(group: MeasureReportGroup | undefined): string {
  const strata = group?.stratifier?.[0]?.stratum ?? [];
  if (!strata.length) return '';
  const outcomes = [...new Set(strata.flatMap((s) => (s.population ?? []).map((p) => p.code?.text ?? '')))];
  const cell = (s: (typeof strata)[number], outcome: string) => s.population?.find((p) => p.code?.text === outcome)?.count ?? 0;
  const head = `<tr><th scope="col">Reason</th>${outcomes.map((o) => `<th scope="col">${esc(o)}</th>`).join('')}</tr>`;
  const rows = strata.map((s) => `<tr><th scope="row">${esc(s.value?.text)}</th>${outcomes.map((o) => `<td>${cell(s, o)}</td>`).join('')}</tr>`).join('');
  return `<table aria-label="${esc(group?.code?.text)}"><caption>${esc(group?.code?.text)}</caption>${head}${rows}</table>`;
}

/** The second-opinion professional: authorized cases (for whom, and the question), and posting the consultation report (R14). */
async function consultantView(app: HTMLElement, api: SecondOpinionApi): Promise<void> {
  app.innerHTML = '<section><h2>Second opinions authorized to you</h2><p id="action-status" role="status" aria-live="polite"></p><div id="cases"></div></section>';
  const target = document.getElementById('cases')!;
  const announce = actionStatus();
  const post = (c: CaseView) => {
    const box = el('div', { class: 'actions' });
    const id = `report-${c.task.id}`;
    box.innerHTML = `<label for="${id}">Consultation report: findings, recommended procedures and tests</label><textarea id="${id}" rows="6"></textarea>`;
    const textarea = box.querySelector('textarea')!;
    const send = el('button', { type: 'button', 'data-action': 'post-report' }, 'Post the report');
    textarea.addEventListener('input', () => clearInvalid(box));
    send.addEventListener('click', async () => {
      const text = textarea.value.trim();
      if (!text) return showInvalid(box, textarea, 'Write the report first.');
      await progress(box, async () => {
        await api.reviewAction(c.task.id!, 'post-report', [{ name: 'report', resource: consultationReport(c.patient, text) }]);
        await renderCases(api, 'status=accepted&_sort=due', target, post);
        announce('The report is posted and sent to the member and the requesting provider.');
      }, box);
    });
    box.append(send);
    return box;
  };
  await renderCases(api, 'status=accepted&_sort=due', target, post);
}

/** The report as a DocumentReference: plain text (UTF-8, base64 in chunks: long reports are fine), titled by whom it is for and when. */
function consultationReport(patient: Patient | undefined, text: string): DocumentReference {
  const date = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' }).format(new Date());
  return {
    resourceType: 'DocumentReference',
    status: 'current',
    description: `Consultation report for ${nameOf(patient) || 'the member'}, ${date}`,
    content: [{ attachment: { contentType: 'text/plain; charset=utf-8', data: base64Of(new TextEncoder().encode(text)) } }],
  };
}
