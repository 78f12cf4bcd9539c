import type { Task } from 'fhir/r4.js';
import { nameOf, type SecondOpinionApi, SYSTEMS } from './api.js';
import { clearInvalid, dueLine, el, esc, lettersBox, progress, showInvalid } from './ui.js';

/** R17 (PHC VI.E): what a grievance can be about, in the member's words. */
const CATEGORIES: [string, string][] = [
  ['pcp-not-granted', 'My doctor did not grant or send my request for a second opinion'],
  ['plan-decision', 'The plan denied or changed my request'],
  ['deadline-missed', 'A decision or letter came late'],
  ['other', 'Something else'],
];
const OUTCOMES: [string, string][] = [['upheld', 'Upheld (in the member’s favor)'], ['partly-upheld', 'Partly upheld'], ['not-upheld', 'Not upheld']];

const stepOf = (t: Task) => t.businessStatus?.coding?.[0]?.code ?? '';
const categoryOf = (t: Task) => CATEGORIES.find(([code]) => code === t.reasonCode?.coding?.[0]?.code)?.[1] ?? 'Grievance';
const acknowledgmentDue = (t: Task) => t.input?.find((i) => i.type.text === 'acknowledgment-due')?.valueDateTime;

/** A grievance's card: what it is about, for whom, where it stands, its dues (overdue flagged while open) and its letters. */
function grievanceCard(api: SecondOpinionApi, task: Task, names: Map<string, string> = new Map()): HTMLElement {
  const card = el('div', { class: 'card grievance' });
  const open = task.status !== 'completed';
  const about = task.focus?.reference ? names.get(task.focus.reference) ?? task.focus.display ?? task.focus.reference : '';
  card.innerHTML = `<h3>${esc(categoryOf(task))} — ${esc(stepOf(task))}</h3>
    <p>${esc(names.get(task.for?.reference ?? '') ?? task.for?.display ?? task.for?.reference)}${about ? ` · about ${esc(about)}` : ''}${task.priority === 'urgent' ? ' · <strong>urgent (72 hours)</strong>' : ''}</p>
    <blockquote>${esc(task.note?.[0]?.text)}</blockquote>
    ${dueLine('Acknowledgment due', acknowledgmentDue(task), stepOf(task) === 'received')}
    ${dueLine('Resolution due', task.restriction?.period?.end, open)}`;
  card.append(lettersBox('Grievance letters', () => api.letters(`Task/${task.id}`)));
  return card;
}

/** The member's grievances and a form to file one about one of their requests, or none (R17, PHC VI.E). */
export async function memberGrievances(app: HTMLElement, api: SecondOpinionApi, patientId: string): Promise<void> {
  const section = el('section', { 'aria-labelledby': 'grievance-h' });
  const cases = await api.cases(`patient=${patientId}&_sort=-authored-on`);
  const requestName = (c: (typeof cases)[number]) => `${nameOf(c.performer) || 'Second opinion'}${c.task.authoredOn ? `, asked ${new Date(c.task.authoredOn).toLocaleDateString()}` : ''}`;
  const names = new Map(cases.filter((c) => c.request?.id).map((c) => [`ServiceRequest/${c.request!.id}`, `my request (${requestName(c)})`]));
  names.set(`Patient/${patientId}`, 'Me');
  section.innerHTML = `<h2 id="grievance-h">File a grievance</h2>
    <p class="note">If your doctor did not grant your request for a second opinion, or you are unhappy with how we handled it, tell our Grievance Coordinator. We write back within 5 days and decide within 30 days (72 hours if your health is at serious risk).</p>
    <form id="grievance-form" novalidate>
      <label for="grievance-category">What is it about?</label><select id="grievance-category" required><option value="">Choose…</option>${CATEGORIES.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
      <label for="grievance-case">Which request?</label><select id="grievance-case"><option value="">None (no request was made)</option>${cases.filter((c) => c.request?.id).map((c) => `<option value="ServiceRequest/${esc(c.request!.id)}">${esc(requestName(c))}</option>`).join('')}</select>
      <label for="grievance-text">Tell us what happened</label><textarea id="grievance-text" rows="3" required></textarea>
      <label><input type="checkbox" id="grievance-urgent" /> My health is at serious and immediate risk</label>
      <button type="submit" id="file-grievance">File the grievance</button>
    </form><div id="grievance-answer" aria-live="polite"></div>
    <h2>My grievances</h2><div id="grievances"></div>`;
  app.append(section);
  const list = section.querySelector<HTMLElement>('#grievances')!;
  const refresh = async () => {
    const grievances = await api.grievances(`patient=${patientId}&_sort=-authored-on`);
    list.replaceChildren(...grievances.map((t) => grievanceCard(api, t, names)));
    if (!grievances.length) list.textContent = 'None.';
  };
  const form = section.querySelector('form')!;
  const field = (id: string) => section.querySelector(`#${id}`) as HTMLInputElement;
  form.addEventListener('input', () => clearInvalid(form));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const answer = section.querySelector<HTMLElement>('#grievance-answer')!;
    if (!field('grievance-category').value) return showInvalid(form, field('grievance-category'), 'Choose what the grievance is about.');
    const description = field('grievance-text').value.trim();
    if (!description) return showInvalid(form, field('grievance-text'), 'Tell us what happened.');
    await progress(answer, async () => {
      const task = await api.fileGrievance({ category: field('grievance-category').value, description, expedited: field('grievance-urgent').checked, regarding: field('grievance-case').value || undefined });
      answer.innerHTML = `<div class="notice" id="grievance-filed">Grievance received. ${dueLine('We will decide by', task.restriction?.period?.end, true)}</div>`;
      form.reset();
      await refresh();
    }, form);
  });
  await refresh();
}

/** 42 CFR 438.406(b)(2)(ii): a grievance the plan's physician resolves names that role among its performers (the server decides which). */
const isClinical = (t: Task) => Boolean(t.performerType?.some((p) => p.coding?.some((c) => c.system === SYSTEMS.userRole && c.code === 'medical-director')));

/** What the signed-in staff member does at the desk: the coordinator acknowledges and resolves what is not clinical; the physician resolves clinical grievances. */
interface DeskRole {
  coordinator: boolean;
  physician: boolean;
}

/** The page size of the desk: `pageSize` at launch (1-100), 50 otherwise. */
export function deskPageSize(stored: string | null): number {
  const n = Number(stored);
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : 50;
}

/**
 * The grievance desk (R17): open grievances, earliest resolution due first, a page at a time (the server's `next` and
 * `previous` links). The Grievance Coordinator sees them all; a physician of the plan (medical-director) those that
 * are clinical, to resolve once acknowledged (42 CFR 438.406(b)(2)).
 */
export async function grievanceDesk(app: HTMLElement, api: SecondOpinionApi, pageSize = 50): Promise<void> {
  const roles = await api.staffRoles();
  const role: DeskRole = { coordinator: roles.includes('grievance-coordinator'), physician: roles.includes('medical-director') };
  const onlyPhysician = role.physician && !role.coordinator;
  const title = onlyPhysician ? 'Clinical grievances to resolve' : 'Open grievances';
  app.innerHTML = `<section><h2>${title}</h2><p>Earliest resolution due first; overdue acknowledgments and resolutions are flagged.</p><div id="grievances"></div>
    <nav class="pager" aria-label="Grievance pages"><button type="button" id="grievances-previous">Previous page</button> <span id="grievances-page" aria-live="polite"></span> <button type="button" id="grievances-next">Next page</button></nav></section>`;
  const performer = onlyPhysician ? `&performer=${encodeURIComponent(`${SYSTEMS.userRole}|medical-director`)}` : '';
  const pager = new DeskPager(api, `status=requested,in-progress&_sort=due${performer}`, pageSize, (task, refresh) => withActions(api, task, role, refresh));
  await pager.show();
}

/** Follows the server's page links; after an action the page shown is read again. */
class DeskPager {
  private url?: string;
  private number = 1;
  private readonly list = document.getElementById('grievances')!;
  private readonly previous = document.getElementById('grievances-previous') as HTMLButtonElement;
  private readonly next = document.getElementById('grievances-next') as HTMLButtonElement;
  private links: { next?: string; previous?: string } = {};

  constructor(
    private readonly api: SecondOpinionApi,
    private readonly query: string,
    private readonly pageSize: number,
    private readonly card: (task: Task, refresh: () => Promise<void>) => HTMLElement,
  ) {
    this.previous.addEventListener('click', () => this.move(-1));
    this.next.addEventListener('click', () => this.move(1));
  }

  async show(): Promise<void> {
    const page = this.url ? await this.api.page<Task>(this.url) : await this.api.grievancePage(this.query, this.pageSize);
    this.links = { next: page.next, previous: page.previous };
    this.list.replaceChildren(...page.items.map((t) => this.card(t, () => this.show())));
    if (!page.items.length) this.list.textContent = this.number === 1 ? 'No open grievances.' : 'No open grievances on this page.';
    this.previous.disabled = !page.previous;
    this.next.disabled = !page.next;
    document.getElementById('grievances-page')!.textContent = `Page ${this.number}`;
  }

  private async move(step: 1 | -1): Promise<void> {
    const url = step === 1 ? this.links.next : this.links.previous;
    if (!url) return;
    this.url = url;
    this.number = Math.max(1, this.number + step);
    await progress(this.list, () => this.show());
  }
}

/** A grievance's card with what the signed-in staff member may do at its step. */
function withActions(api: SecondOpinionApi, task: Task, role: DeskRole, refresh: () => Promise<void>): HTMLElement {
  const card = grievanceCard(api, task);
  const box = el('div');
  const act = (action: string, label: string, parameter: () => { name: string; valueCode?: string; valueString?: string }[] | { problem: string; field: HTMLElement }) => {
    const button = el('button', { type: 'button', 'data-action': action }, label);
    button.addEventListener('click', () => {
      clearInvalid(box);
      const prepared = parameter();
      if ('problem' in prepared) return showInvalid(box, prepared.field, prepared.problem);
      return progress(box, async () => {
        await api.reviewAction(task.id!, action, prepared);
        await refresh();
      }, box);
    });
    box.append(button);
  };
  const step = stepOf(task);
  const resolver = isClinical(task) ? role.physician : role.coordinator;
  if (step === 'received' && role.coordinator) act('acknowledge-grievance', 'Acknowledge (letter to the member)', () => []);
  else if (step === 'received') box.innerHTML = '<p class="note">Waiting for the Grievance Coordinator’s acknowledgment.</p>';
  if (step === 'acknowledged' && resolver) {
    box.innerHTML = `<label for="outcome-${esc(task.id)}">Outcome</label><select id="outcome-${esc(task.id)}"><option value="">Choose…</option>${OUTCOMES.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('')}</select>
      <label for="resolution-${esc(task.id)}">Resolution and its reasons, as the member will read them</label><textarea id="resolution-${esc(task.id)}" rows="3"></textarea>`;
    const field = (id: string) => box.querySelector(`#${id}-${CSS.escape(task.id!)}`) as HTMLInputElement;
    act('resolve-grievance', 'Resolve (letter with the member’s rights)', () => {
      if (!field('outcome').value) return { problem: 'Choose the outcome.', field: field('outcome') };
      if (!field('resolution').value.trim()) return { problem: 'Write the resolution and its reasons.', field: field('resolution') };
      return [{ name: 'outcome', valueCode: field('outcome').value }, { name: 'resolution', valueString: field('resolution').value.trim() }];
    });
  } else if (step === 'acknowledged') {
    box.innerHTML = '<p class="note awaiting-physician">Clinical: a physician of the plan who took no part in the case resolves it (42 CFR 438.406(b)(2)).</p>';
  }
  card.append(box);
  return card;
}
