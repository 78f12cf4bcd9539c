import { type CaseDocument, errorMessage } from './api.js';

/** Small DOM helpers: escaping, elements, progress and readable errors (never a blank page). */
export const esc = (s: unknown): string =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

export function showError(target: HTMLElement, message: string): void {
  const box = el('div', { class: 'error', role: 'alert' }, `Something went wrong: ${message}`);
  target.prepend(box);
}

export async function progress(target: HTMLElement, work: () => Promise<void>): Promise<void> {
  const status = el('p', { role: 'status' }, 'Working…');
  target.append(status);
  try {
    await work();
  } catch (err) {
    showError(target, errorMessage(err));
  } finally {
    status.remove();
  }
}

/**
 * A letter's HTML runs in a sandboxed frame (no scripts) whose own policy loads nothing from elsewhere (no
 * tracking images, no remote styles); plain text is shown as text; anything else is only named.
 */
const FRAME_POLICY = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`;

export function documentView(d: CaseDocument): string {
  if (d.kind === 'html') return `<iframe title="${esc(d.title)}" sandbox="" srcdoc="${esc(FRAME_POLICY + d.body)}" style="width:100%;height:16rem;border:0"></iframe>`;
  if (d.kind === 'text') return `<pre class="document">${esc(d.body)}</pre>`;
  return `<p>An attachment of type ${esc(d.contentType || 'unknown')}, not shown here.</p>`;
}

/** How close a due date is, as a class on its line: past (overdue) or within a day (due soon); nothing once closed. */
export function dueClass(due: string | undefined, open: boolean): { className: string; hoursLeft?: number } {
  const hoursLeft = due ? (Date.parse(due) - Date.now()) / 3_600_000 : undefined;
  if (!open || hoursLeft === undefined) return { className: '' };
  return { className: hoursLeft < 0 ? 'overdue' : hoursLeft < 24 ? 'due-soon' : '', hoursLeft };
}

/** A folded list of letters, loaded when first opened. */
export function lettersBox(summary: string, load: () => Promise<CaseDocument[]>): HTMLElement {
  const letters = el('details');
  letters.innerHTML = `<summary>${esc(summary)}</summary><div>Loading…</div>`;
  letters.addEventListener('toggle', async () => {
    const docs = await load();
    letters.querySelector('div')!.innerHTML = docs.map((d) => `<article class="card"><h4>${esc(d.title)}</h4>${documentView(d)}</article>`).join('') || 'None yet.';
  }, { once: true });
  return letters;
}
