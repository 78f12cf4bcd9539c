/** Small server-rendered pages (login, patient picker, sandbox EHR); every value is escaped. */
import { esc } from '../domain/html.js';

export { esc };

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}select,button,input{font-size:1rem;padding:.4rem;max-width:100%}
button{margin-top:1rem;background:#0b5394;color:#fff;border:0;border-radius:4px;padding:.5rem 1rem;cursor:pointer}
button:focus,select:focus{outline:3px solid #f4b400}.note{color:#444;font-size:.9rem}</style></head>
<body><main>${body}</main></body></html>`;
}

export function select(name: string, label: string, options: { value: string; label: string }[], required = true): string {
  return `<label for="${esc(name)}">${esc(label)}</label><select id="${esc(name)}" name="${esc(name)}"${required ? ' required' : ''}>
${options.map((o) => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join('\n')}</select>`;
}

export const hidden = (params: Record<string, string | undefined>): string =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
