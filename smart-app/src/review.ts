import type { Parameters } from 'fhir/r4.js';
import { allowedActions, type CaseStep, type ReviewAction } from '../../server/src/domain/reviewPath.js';
import { planById } from '../../server/src/domain/plans.js';
import { USER_ROLES, type UserRole } from '../../server/src/fhir/request.js';
import { type CaseView, nameOf, type SecondOpinionApi } from './api.js';
import { clearError, clearInvalid, el, esc, progress, showInvalid } from './ui.js';

/** The review path's table (server/src/domain/reviewPath.ts) is the app's too: a card offers what the step allows the user's roles. */
export function userRoles(codes: string[]): UserRole[] {
  return USER_ROLES.filter((r) => codes.includes(r));
}

export const stepOf = (c: CaseView): CaseStep => (c.task.businessStatus?.coding?.[0]?.code ?? 'um-review') as CaseStep;

/** A case is extended once at most (42 CFR 438.210(d)(1)(ii)): the server records it as an `extended` output and refuses another. */
const wasExtended = (c: CaseView): boolean => (c.task.output ?? []).some((o) => o.type.text === 'extended');

/** What the roles may do at the case's step under its plan (the stricter BSP rules when the plan is unknown); no second extension. */
export function allowedFor(c: CaseView, roles: UserRole[]): ReviewAction[] {
  const plan = planById(c.planId ?? '') ?? planById('bsp')!;
  return allowedActions(plan, stepOf(c), roles).filter((a) => a !== 'extend' || !wasExtended(c));
}

/** The actions of the review queue, in the order offered, and what the user is told once each is done. */
const STAFF_ACTIONS: [ReviewAction, string, string][] = [
  ['approve', 'Approve', 'Approved: the letters are sent.'],
  ['modify', 'Modify (another professional)', 'Modified: the letters are sent.'],
  ['request-info', 'Request info', 'Information requested from the provider.'],
  ['escalate', 'Escalate to the Medical Director', 'Sent to the Medical Director.'],
  ['refer-consultative-review', 'Refer for consultative review', 'Referred for consultative review.'],
  ['extend', 'Extend', 'Deadline extended: the letters are sent.'],
  ['deny', 'Deny', 'Denied: the denial letters are sent.'],
];

/** The fields an action reads; absent fields are not shown. */
interface ActionFields {
  reason?: HTMLTextAreaElement;
  criteria?: HTMLInputElement;
  what?: HTMLInputElement;
  days?: HTMLInputElement;
  professional?: HTMLSelectElement;
  professionalId?: HTMLInputElement;
}

type Prepared = { parameter: Parameters['parameter'] } | { problem: string; field?: HTMLElement };

/**
 * A case's actions for plan staff: only those its step allows their roles, with the fields they need. A denial
 * needs its reason and is confirmed in the page before it is sent; nothing is ever sent with a made-up reason.
 */
export function staffActions(api: SecondOpinionApi, c: CaseView, roles: UserRole[], done: (message: string) => Promise<void>): HTMLElement {
  const box = el('div', { class: 'actions' });
  const allowed = STAFF_ACTIONS.filter(([action]) => allowedFor(c, roles).includes(action));
  if (!allowed.length) {
    box.innerHTML = '<p class="note">Nothing for you to do at this step.</p>';
    return box;
  }
  const has = (...actions: ReviewAction[]) => allowed.some(([a]) => actions.includes(a));
  const id = c.task.id!;
  const fields: ActionFields = {};
  const field = <T extends HTMLElement>(tag: string, key: string, label: string, attrs: Record<string, string> = {}): T => {
    const input = el(tag, { id: `${key}-${id}`, ...attrs }) as T;
    box.append(el('label', { for: input.id }, label), input);
    return input;
  };
  if (has('approve', 'modify', 'refer-consultative-review')) Object.assign(fields, professionalChooser(api, c, box));
  if (has('request-info')) fields.what = field('input', 'what', 'Information needed (for Request info)');
  if (has('deny', 'modify', 'extend')) fields.reason = field('textarea', 'reason', 'Reason (for a denial, modification or extension; the member reads it)', { rows: '2' });
  if (has('deny')) fields.criteria = field('input', 'criteria', 'Criteria used (for a denial: the guideline or policy applied)');
  if (has('extend')) fields.days = field('input', 'days', 'Extension in days (1–14)', { type: 'number', min: '1', max: '14' });
  const buttons = el('div', { class: 'buttons' });
  const confirm = el('div', { class: 'confirm' });
  box.append(buttons, confirm);
  const send = (action: ReviewAction, message: string, parameter: Parameters['parameter']) =>
    progress(box, async () => {
      await api.reviewAction(id, action, parameter);
      await done(message);
    }, box);
  for (const [action, label, message] of allowed) {
    const button = el('button', { type: 'button', 'data-action': action }, label);
    button.addEventListener('click', () => {
      clearInvalid(box);
      clearError(box);
      confirm.replaceChildren();
      const prepared = prepare(action, fields);
      if ('problem' in prepared) return showInvalid(box, prepared.field, prepared.problem);
      if (action !== 'deny') return void send(action, message, prepared.parameter);
      askToConfirm(confirm, `Deny this request? The member and the requesting provider will be sent a denial letter giving this reason: “${fields.reason!.value.trim()}”.`, 'Confirm denial', () => send(action, message, prepared.parameter));
    });
    buttons.append(button);
  }
  box.addEventListener('input', () => clearInvalid(box));
  return box;
}

/** The parameters of an action from its fields, or what is missing. */
function prepare(action: ReviewAction, f: ActionFields): Prepared {
  const text = (input: HTMLInputElement | HTMLTextAreaElement | undefined) => input?.value.trim() ?? '';
  const professional = chosenProfessional(f);
  const named = (name: string) => (professional ? [{ name, valueReference: { reference: professional } }] : []);
  switch (action) {
    case 'approve':
      return { parameter: named('authorizedPractitionerRole') };
    case 'modify':
      if (!professional) return { problem: 'Choose the professional to authorize instead of the one requested.', field: f.professional };
      if (!text(f.reason)) return { problem: 'Give the reason for the modification: the member reads it in their letter.', field: f.reason };
      return { parameter: [...named('authorizedPractitionerRole'), { name: 'reason', valueString: text(f.reason) }] };
    case 'deny':
      if (!text(f.reason)) return { problem: 'Give the specific reason for the denial: the member reads it in their letter.', field: f.reason };
      return { parameter: [{ name: 'reason', valueString: text(f.reason) }, ...(text(f.criteria) ? [{ name: 'criteria', valueString: text(f.criteria) }] : [])] };
    case 'request-info':
      if (!text(f.what)) return { problem: 'Say what information is needed.', field: f.what };
      return { parameter: [{ name: 'what', valueString: text(f.what) }] };
    case 'extend': {
      const days = Number(text(f.days));
      if (!Number.isInteger(days) || days < 1 || days > 14) return { problem: 'Give the extension in whole days, 1 to 14.', field: f.days };
      if (!text(f.reason)) return { problem: 'Give the reason for the extension: the member reads it in their letter.', field: f.reason };
      return { parameter: [{ name: 'days', valueInteger: days }, { name: 'reason', valueString: text(f.reason) }] };
    }
    case 'refer-consultative-review':
      return { parameter: named('reviewer') };
    default:
      return { parameter: [] };
  }
}

const OTHER = 'other';

function chosenProfessional(f: ActionFields): string | undefined {
  if (f.professional?.value === OTHER) return f.professionalId?.value.trim() || undefined;
  return f.professional?.value || undefined;
}

/** The professional to authorize (or the consultative reviewer): the one requested, those of the requested specialty by name, or an id typed in. */
function professionalChooser(api: SecondOpinionApi, c: CaseView, box: HTMLElement): Pick<ActionFields, 'professional' | 'professionalId'> {
  const id = c.task.id!;
  const requested = c.request?.performer?.[0]?.reference;
  const select = el('select', { id: `professional-${id}` }) as HTMLSelectElement;
  select.innerHTML = `<option value="">${requested ? `As requested: ${esc(nameOf(c.performer) || requested)}` : 'Choose a professional…'}</option><option value="${OTHER}">Another (enter a PractitionerRole id)</option>`;
  const typed = el('input', { id: `professional-id-${id}`, placeholder: 'PractitionerRole/…', hidden: '' }) as HTMLInputElement;
  const typedLabel = el('label', { for: typed.id, hidden: '' }, 'PractitionerRole id');
  select.addEventListener('change', () => {
    typed.hidden = typedLabel.hidden = select.value !== OTHER;
  });
  box.append(el('label', { for: select.id }, 'Professional to authorize, or consultative reviewer'), select, typedLabel, typed);
  const specialty = c.request?.performerType?.coding?.[0]?.code;
  if (specialty) {
    void api.professionals(specialty).then((list) => {
      const options = list.map((p) => `<option value="${esc(p.reference)}">${esc(p.display)}${p.reference === requested ? ' (requested)' : ''}</option>`).join('');
      select.querySelector(`option[value="${OTHER}"]`)!.insertAdjacentHTML('beforebegin', options);
    }, () => undefined);
  }
  return { professional: select, professionalId: typed };
}

/** A confirmation step in the page: the question, a button that does it, and one that does not. */
export function askToConfirm(area: HTMLElement, question: string, yes: string, action: () => Promise<void>): void {
  area.innerHTML = `<p role="alert">${esc(question)}</p>`;
  const confirm = el('button', { type: 'button', 'data-action': 'confirm' }, yes);
  const cancel = el('button', { type: 'button', 'data-action': 'cancel', class: 'secondary' }, 'Cancel');
  confirm.addEventListener('click', async () => {
    await action();
    area.replaceChildren();
  });
  cancel.addEventListener('click', () => area.replaceChildren());
  area.append(confirm, cancel);
  confirm.focus();
}

/** R1: the requester (the member, or the physician who asked) may withdraw a request, confirmed in the page. */
export function withdrawAction(api: SecondOpinionApi, c: CaseView, role: UserRole, fhirUser: string | undefined, done: (message: string) => Promise<void>): HTMLElement {
  const box = el('div', { class: 'actions' });
  const ownRequest = role === 'member' || (fhirUser !== undefined && c.task.requester?.reference === fhirUser);
  if (!ownRequest || !allowedFor(c, [role]).includes('withdraw')) return box;
  const id = c.task.id!;
  const button = el('button', { type: 'button', 'data-action': 'withdraw', class: 'secondary' }, 'Withdraw the request');
  const confirm = el('div', { class: 'confirm' });
  button.addEventListener('click', () => {
    confirm.innerHTML = `<label for="withdraw-reason-${esc(id)}">Why (optional)</label><input id="withdraw-reason-${esc(id)}" />`;
    const reason = confirm.querySelector('input')!;
    const area = el('div');
    confirm.append(area);
    askToConfirm(area, 'Withdraw this request? The plan stops reviewing it.', 'Confirm withdrawal', () =>
      progress(box, async () => {
        await api.reviewAction(id, 'withdraw', reason.value.trim() ? [{ name: 'reason', valueString: reason.value.trim() }] : []);
        await done('The request is withdrawn.');
      }, box));
  });
  box.append(button, confirm);
  return box;
}
