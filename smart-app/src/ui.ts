import { type CaseDocument, describeError } from './api.js';

/** Small DOM helpers: escaping, elements, progress and readable errors (never a blank page). */
export const esc = (s: unknown): string =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** Where to launch the app again when its session is gone: the sandbox EHR (demo mode). */
export const RELAUNCH_URL = '/sandbox';

/** Shows the one current error of an area (replacing the one before), with a relaunch link when the session has ended. */
export function showError(target: HTMLElement, err: unknown): void {
  clearError(target);
  const { message, sessionEnded } = describeError(err);
  const box = el('div', { class: 'error', role: 'alert' }, message);
  if (sessionEnded) {
    box.append(' ');
    box.append(el('a', { href: RELAUNCH_URL }, 'Launch the app again'));
  }
  target.prepend(box);
}

export function clearError(target: HTMLElement): void {
  for (const old of target.querySelectorAll(':scope > .error')) old.remove();
}

/** An inline message next to a field that needs an answer; replaced by the next one, removed once the field is filled. */
export function showInvalid(box: HTMLElement, field: HTMLElement | undefined, message: string): void {
  clearInvalid(box);
  const id = `${field?.id || 'field'}-problem`;
  const problem = el('p', { class: 'field-error', role: 'alert', id }, message);
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.setAttribute('aria-describedby', id);
    field.after(problem);
    field.focus();
  } else box.prepend(problem);
}

export function clearInvalid(box: HTMLElement): void {
  for (const problem of box.querySelectorAll('.field-error')) problem.remove();
  for (const field of box.querySelectorAll('[aria-invalid]')) {
    field.removeAttribute('aria-invalid');
    field.removeAttribute('aria-describedby');
  }
}

/**
 * Runs `work` with a "Working…" status in `target`, clearing the area's last error first and showing the new one
 * if it fails. The buttons of `busy` (a button, or the form or action box holding them) are disabled meanwhile,
 * so a double click sends one request; a call while they are disabled does nothing.
 */
export async function progress(target: HTMLElement, work: () => Promise<void>, busy?: HTMLElement): Promise<void> {
  const buttons = busyButtons(busy);
  if (buttons.some((b) => b.disabled)) return;
  for (const b of buttons) b.disabled = true;
  clearError(target);
  const status = el('p', { role: 'status', 'aria-live': 'polite', class: 'working' }, 'Working…');
  target.append(status);
  try {
    await work();
  } catch (err) {
    showError(target, err);
  } finally {
    status.remove();
    for (const b of buttons) b.disabled = false;
  }
}

function busyButtons(busy: HTMLElement | undefined): HTMLButtonElement[] {
  if (!busy) return [];
  const scope = busy instanceof HTMLButtonElement ? (busy.form ?? busy.closest<HTMLElement>('.actions') ?? busy) : busy;
  return scope instanceof HTMLButtonElement ? [scope] : [...scope.querySelectorAll<HTMLButtonElement>('button')];
}

/** A date and time in the reader's zone, the zone named (e.g. "Dec 8, 2026, 5:01 PM PST"). */
export function localDateTime(iso: string | undefined): string {
  if (!iso || Number.isNaN(Date.parse(iso))) return iso ?? '';
  return new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' }).format(new Date(iso));
}

/** A due date as a line: "<label> <time> (N h left)" or "(overdue by N h)" while it runs; the <time> keeps the instant. */
export function dueLine(label: string, due: string | undefined, running: boolean): string {
  if (!due) return '';
  const { className, hoursLeft } = dueClass(due, running);
  const left = hoursLeft === undefined ? '' : hoursLeft < 0 ? ` (overdue by ${Math.max(1, Math.round(-hoursLeft))} h)` : ` (${Math.round(hoursLeft)} h left)`;
  return `<p class="${className}">${esc(label)} <time datetime="${esc(due)}">${esc(localDateTime(due))}</time>${left}</p>`;
}

/**
 * A letter's HTML runs in a sandboxed frame (no scripts; same origin only so that the page can size the frame to
 * the letter) whose own policy loads nothing from elsewhere (no tracking images, no remote styles); plain text is
 * shown as text; anything else is only named.
 */
const FRAME_POLICY = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`;

export function documentView(d: CaseDocument): string {
  if (d.kind === 'html') return `<iframe title="${esc(d.title)}" sandbox="allow-same-origin" srcdoc="${esc(FRAME_POLICY + d.body)}" class="letter-frame"></iframe>`;
  if (d.kind === 'text') return `<pre class="document">${esc(d.body)}</pre>`;
  return `<p>An attachment of type ${esc(d.contentType || 'unknown')}, not shown here.</p>`;
}

/** How close a due date is, as a class on its line: past (overdue) or within a day (due soon); nothing once closed. */
export function dueClass(due: string | undefined, open: boolean): { className: string; hoursLeft?: number } {
  const hoursLeft = due ? (Date.parse(due) - Date.now()) / 3_600_000 : undefined;
  if (!open || hoursLeft === undefined) return { className: '' };
  return { className: hoursLeft < 0 ? 'overdue' : hoursLeft < 24 ? 'due-soon' : '', hoursLeft };
}

/** A folded list of letters, loaded when first opened (a failed load says so, and is tried again on the next opening). */
export function lettersBox(summary: string, load: () => Promise<CaseDocument[]>): HTMLElement {
  const letters = el('details') as HTMLDetailsElement;
  letters.innerHTML = `<summary>${esc(summary)}</summary><div aria-live="polite">Loading…</div>`;
  const list = letters.querySelector('div')!;
  let loaded = false;
  letters.addEventListener('toggle', async () => {
    if (loaded || !letters.open) return;
    loaded = true;
    list.textContent = 'Loading…';
    try {
      const docs = await load();
      list.innerHTML = docs.map((d) => `<article class="card"><h4>${esc(d.title)}</h4>${documentView(d)}</article>`).join('') || 'None yet.';
      for (const frame of list.querySelectorAll<HTMLIFrameElement>('iframe.letter-frame')) frame.addEventListener('load', () => fitFrame(frame));
    } catch (err) {
      loaded = false;
      list.textContent = '';
      showError(list, err);
    }
  });
  return letters;
}

/** A letter's frame as tall as the letter, so the page scrolls and not a small box inside it. */
function fitFrame(frame: HTMLIFrameElement): void {
  const height = frame.contentDocument?.documentElement.scrollHeight;
  if (height) frame.style.height = `${height + 16}px`;
}
