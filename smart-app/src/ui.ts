import { errorMessage } from './api.js';

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
