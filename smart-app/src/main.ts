import FHIR from 'fhirclient';
import type { DocumentReference, MeasureReportGroup, Task } from 'fhir/r4.js';
import { type Banner, type CaseDocument, errorMessage, type FhirRequester, type RequestForm, SecondOpinionApi } from './api.js';
import { dueClass, el, esc, lettersBox, progress, showError } from './ui.js';
import { deskPageSize, grievanceDesk, memberGrievances } from './grievances.js';

const REASONS: [string, string][] = [
  ['surgery-necessity', 'Questions the need for recommended surgery or treatment'],
  ['serious-condition', 'Serious condition: questions the diagnosis or plan of care'],
  ['unclear-diagnosis', 'Unclear or conflicting diagnosis'],
  ['not-improving', 'Treatment is not improving the condition'],
  ['persistent-concerns', 'Serious concerns persist after following the plan'],
  ['other', 'Other (describe)'],
];
const SPECIALTIES: [string, string][] = [
  ['207RC0000X', 'Cardiology'], ['207X00000X', 'Orthopaedic surgery'], ['207RX0202X', 'Medical oncology'], ['2084N0400X', 'Neurology'], ['2084P0800X', 'Psychiatry'], ['207Q00000X', 'Family medicine (PCP)'],
];
const STEPS = ['received', 'um-review', 'info-requested', 'info-received', 'medical-director-review', 'approved', 'transport-arranged', 'denied', 'completed'];

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
    if (!fhir.patientId) throw new Error('No patient in context');
    const banner = await api.banner(fhir.patientId);
    document.getElementById('banner')!.innerHTML = bannerHtml(banner);
    await physicianView(app, api, fhir, banner);
    if (mode === 'member') {
      memberRights(app);
      await memberGrievances(app, api, fhir.patientId);
    }
  } catch (err) {
    showError(app, errorMessage(err));
  }
}

function bannerHtml(b: Banner): string {
  return `<strong>${esc(b.name)}</strong> · born ${esc(b.birthDate)} · Medi-Cal ID ${esc(b.cin)} · ${esc(b.plan)} · PCP ${esc(b.pcp)} · medical group ${esc(b.group ?? 'none')}`;
}

async function physicianView(app: HTMLElement, api: SecondOpinionApi, fhir: FhirRequester, banner: Banner): Promise<void> {
  app.innerHTML = `
  <section aria-labelledby="req-h"><h2 id="req-h">Request a second opinion</h2>
  <form id="request-form">
    <label for="reason">Reason (R2)</label><select id="reason" required>${REASONS.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="reason-text">Details</label><textarea id="reason-text" rows="2"></textarea>
    <label for="care-questioned">Whose care is questioned</label><select id="care-questioned">${banner.careTeam.map((c) => `<option value="${esc(c.reference)}">${esc(c.display)}</option>`).join('')}</select>
    <label for="specialty">Specialty wanted</label><select id="specialty">${SPECIALTIES.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
    <label for="performer">Professional requested (PractitionerRole, optional)</label><input id="performer" placeholder="PractitionerRole/…" />
    <fieldset><legend>Supporting information from the record</legend><div id="supporting">Loading…</div></fieldset>
    <label><input type="checkbox" id="urgent" aria-describedby="urgent-def" /> Urgent</label><p id="urgent-def" class="note">${esc(banner.urgentDefinition ?? 'Waiting the standard time could seriously jeopardize the member’s life, health or function.')}</p>
    <label><input type="checkbox" id="transportation" /> The member needs transportation (R13)</label>
    <label for="language">Preferred language for letters</label><select id="language"><option value="en">English</option><option value="es">Español</option></select>
    <div><button type="button" id="check">Check authorization</button><button type="submit" id="submit">Submit request</button></div>
  </form><div id="answer" aria-live="polite"></div></section>
  <section aria-labelledby="cases-h"><h2 id="cases-h">Requests for this patient</h2><div id="cases"></div></section>`;
  const form = (): RequestForm => ({
    reason: (document.getElementById('reason') as HTMLSelectElement).value,
    reasonText: (document.getElementById('reason-text') as HTMLTextAreaElement).value,
    careQuestioned: (document.getElementById('care-questioned') as HTMLSelectElement).value,
    specialty: (document.getElementById('specialty') as HTMLSelectElement).value,
    performer: (document.getElementById('performer') as HTMLInputElement).value.trim() || undefined,
    urgent: (document.getElementById('urgent') as HTMLInputElement).checked,
    transportation: (document.getElementById('transportation') as HTMLInputElement).checked,
    language: (document.getElementById('language') as HTMLSelectElement).value,
    supporting: [...document.querySelectorAll<HTMLInputElement>('#supporting input:checked')].map((i) => i.value),
  });
  const record = await api.record(fhir.patientId!);
  document.getElementById('supporting')!.innerHTML = record.length
    ? record.map((r, i) => `<label><input type="checkbox" id="support-${i}" value="${esc(r.reference)}" /> ${esc(r.display)}</label>`).join('')
    : 'Nothing in the record.';
  const answer = document.getElementById('answer')!;
  const requester = fhir.fhirUser ?? '';
  document.getElementById('check')!.addEventListener('click', async () => {
    await progress(answer, async () => {
      const r = await api.checkAuthorization(fhir.patientId!, banner.coverageId!, requester, form());
      const needed = r.insurance?.[0]?.item?.[0]?.authorizationRequired;
      answer.innerHTML = `<div class="notice"><p><strong>${needed ? 'Authorization needed' : 'No authorization needed'}</strong></p><p>${esc(r.disposition)}</p></div>`;
    });
  });
  document.getElementById('request-form')!.addEventListener('submit', async (e) => {
    e.preventDefault();
    await progress(answer, async () => {
      const task = await api.submit(fhir.patientId!, banner.coverageId!, requester, form());
      answer.innerHTML = `<div class="notice" id="submitted">Request received. Status: <strong>${esc(task.businessStatus?.coding?.[0]?.code)}</strong>; decision due ${esc(task.restriction?.period?.end)}.</div>`;
      await renderCases(api, `patient=${fhir.patientId}&_sort=-authored-on`, document.getElementById('cases')!);
    });
  });
  const infoBox = (task: Task): HTMLElement => infoAnswer(api, fhir.patientId!, task, () => renderCases(api, `patient=${fhir.patientId}&_sort=-authored-on`, document.getElementById('cases')!, infoBox));
  await renderCases(api, `patient=${fhir.patientId}&_sort=-authored-on`, document.getElementById('cases')!, infoBox);
  if (fhir.fhirUser?.startsWith('Practitioner/')) {
    const mine = el('section', { 'aria-labelledby': 'mine-h' });
    mine.innerHTML = '<h2 id="mine-h">My open and recent requests (all patients)</h2><div id="mine"></div>';
    app.append(mine);
    await renderCases(api, `requester:PractitionerRole.practitioner=${fhir.fhirUser}&_sort=-authored-on`, document.getElementById('mine')!);
  }
}

/** On a case waiting for information, the treating provider attaches a document and answers. */
function infoAnswer(api: SecondOpinionApi, patientId: string, task: Task, refresh: () => Promise<void>): HTMLElement {
  const box = el('div');
  if (task.businessStatus?.coding?.[0]?.code !== 'info-requested') return box;
  const id = `file-${task.id}`;
  box.innerHTML = `<label for="${id}">Information requested: attach a document</label><input type="file" id="${id}" />`;
  const send = el('button', { type: 'button', 'data-action': 'answer-info' }, 'Send the information');
  send.addEventListener('click', async () => {
    const file = (box.querySelector('input[type=file]') as HTMLInputElement).files?.[0];
    if (!file) return;
    await progress(box, async () => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      let binary = '';
      bytes.forEach((b) => (binary += String.fromCharCode(b)));
      await api.answerInformationRequest(task.id!, patientId, { name: file.name, contentType: file.type, base64: btoa(binary) });
      await refresh();
    });
  });
  box.append(send);
  return box;
}

async function renderCases(api: SecondOpinionApi, query: string, target: HTMLElement, actions?: (task: Task) => HTMLElement): Promise<void> {
  const cases = await api.cases(query);
  target.innerHTML = cases.length ? '' : '<p>No requests yet.</p>';
  for (const { task, request } of cases) {
    const card = el('div', { class: 'card' });
    const step = task.businessStatus?.coding?.[0]?.code ?? '';
    const due = task.restriction?.period?.end;
    const open = task.status !== 'completed' && task.status !== 'rejected' && task.status !== 'cancelled';
    const { className, hoursLeft } = dueClass(due, open);
    card.innerHTML = `<h3>${esc(request?.reasonCode?.[0]?.coding?.[0]?.code ?? 'Second opinion')} — ${esc(step)}</h3>
      <p class="${className}">Decision due ${esc(due)}${hoursLeft !== undefined ? ` (${Math.round(hoursLeft)} h left)` : ''}</p>
      <ol aria-label="Timeline">${STEPS.filter((s) => s === step || (task.output ?? []).some((o) => o.type.text?.startsWith(s))).map((s) => `<li>${esc(s)}</li>`).join('')}</ol>`;
    if (request?.id) card.append(lettersBox('Letters and reports', () => api.letters(`ServiceRequest/${request.id}`)));
    if (actions) card.append(actions(task));
    target.append(card);
  }
}

/** R20: the member's rights in plain language, English and Spanish, above their own request form and cases. */
function memberRights(app: HTMLElement): void {
  const rights = el('section', { 'aria-labelledby': 'rights-h' });
  rights.innerHTML = `<h2 id="rights-h">Your rights / Sus derechos</h2>
    <p>You can ask for a second opinion from another qualified doctor, at no cost to you. / Puede pedir una segunda opinión de otro médico calificado, sin costo para usted.</p>
    <p>If we say no, you can appeal, file a grievance, or ask the DMHC Help Center (1-888-466-2219) for help. / Si decimos que no, puede apelar, presentar una queja o pedir ayuda al DMHC (1-888-466-2219).</p>`;
  app.prepend(rights);
}

async function staffView(app: HTMLElement, api: SecondOpinionApi): Promise<void> {
  app.innerHTML = '<section><h2>UM review queue</h2><p>Open cases, earliest due first.</p><div id="cases"></div></section><section aria-labelledby="report-h"><h2 id="report-h">Committee report (R19)</h2><div id="report"></div></section>';
  await committeeReport(api, document.getElementById('report')!);
  const target = document.getElementById('cases')!;
  const actions = (task: Task) => {
    const box = el('div');
    const reason = el('input', { id: `reason-${task.id}`, 'aria-label': 'Reason (for a denial or modification)', placeholder: 'Reason (for a denial or modification)' }) as HTMLInputElement;
    // R3/R10: a request naming no professional is approved naming one; another than the one requested is a modification.
    const professional = el('input', { id: `professional-${task.id}`, 'aria-label': 'Professional to authorize or reviewer (PractitionerRole/…)', placeholder: 'Professional (PractitionerRole/…)' }) as HTMLInputElement;
    box.append(reason, professional);
    const named = (name: string) => (professional.value.trim() ? [{ name, valueReference: { reference: professional.value.trim() } }] : []);
    const parametersFor = (action: string) => {
      switch (action) {
        case 'approve': return named('authorizedPractitionerRole');
        case 'modify': return [...named('authorizedPractitionerRole'), { name: 'reason', valueString: reason.value }];
        case 'deny': return [{ name: 'reason', valueString: reason.value || 'Not medically necessary' }];
        case 'request-info': return [{ name: 'what', valueString: reason.value || 'Recent clinical notes' }];
        case 'refer-consultative-review': return named('reviewer');
        default: return [];
      }
    };
    for (const [action, label] of [['approve', 'Approve'], ['modify', 'Modify'], ['request-info', 'Request info'], ['escalate', 'Escalate'], ['deny', 'Deny'], ['refer-consultative-review', 'Refer']]) {
      const b = el('button', { type: 'button', 'data-action': action }, label);
      b.addEventListener('click', async () => {
        const parameter = parametersFor(action);
        await progress(box, async () => {
          await api.reviewAction(task.id!, action, parameter);
          await renderCases(api, 'status=requested,in-progress,on-hold,received&_sort=due', target, actions);
        });
      });
      box.append(b);
    }
    return box;
  };
  await renderCases(api, 'status=requested,in-progress,on-hold,received&_sort=due', target, actions);
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
        return `<figure><figcaption>${esc(g.code?.text)}</figcaption><svg role="img" aria-label="${esc(g.code?.text)}: ${rows.map(([l, n]) => `${esc(l)} ${n}`).join(', ')}" width="440" height="${rows.length * 22 + 4}">${bars}</svg></figure>`;
      });
    const byReason = reasonOutcomeTable(report.group?.find((g) => g.code?.coding?.[0]?.code === 'by-reason-outcome'));
    target.innerHTML = `<p>Period ${esc(period)}</p>${charts.join('') || '<p>No cases yet this quarter.</p>'}${byReason}`;
  } catch (err) {
    showError(target, errorMessage(err));
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

/** The second-opinion professional: authorized cases, and posting the consultation report (R14). */
async function consultantView(app: HTMLElement, api: SecondOpinionApi): Promise<void> {
  app.innerHTML = '<section><h2>Second opinions authorized to you</h2><div id="cases"></div></section>';
  const target = document.getElementById('cases')!;
  const post = (task: Task) => {
    const box = el('div');
    const id = `report-${task.id}`;
    box.innerHTML = `<label for="${id}">Consultation report: findings, recommended procedures and tests</label><textarea id="${id}" rows="3"></textarea>`;
    const send = el('button', { type: 'button', 'data-action': 'post-report' }, 'Post the report');
    send.addEventListener('click', async () => {
      const text = (box.querySelector('textarea') as HTMLTextAreaElement).value.trim();
      if (!text) return;
      await progress(box, async () => {
        const data = btoa(String.fromCharCode(...new TextEncoder().encode(text)));
        await api.reviewAction(task.id!, 'post-report', [{ name: 'report', resource: { resourceType: 'DocumentReference', status: 'current', description: text.slice(0, 200), content: [{ attachment: { contentType: 'text/plain', data } }] } as DocumentReference }]);
        await renderCases(api, 'status=accepted&_sort=due', target, post);
      });
    });
    box.append(send);
    return box;
  };
  await renderCases(api, 'status=accepted&_sort=due', target, post);
}
