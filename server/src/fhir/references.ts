/**
 * Calls `visit` on every Reference.reference in a resource tree, with the path of the Reference holding it
 * from `path` on (`ServiceRequest.insurance[0]`); a returned string replaces it.
 */
export function rewriteReferences(node: unknown, visit: (ref: string, path: string) => string | undefined, path = '', depth = 0): void {
  if (depth > 64 || typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    node.forEach((item, i) => rewriteReferences(item, visit, `${path}[${i}]`, depth + 1));
    return;
  }
  const record = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(record)) {
    if (k === 'reference' && typeof v === 'string') {
      const replaced = visit(v, path);
      if (replaced !== undefined) record[k] = replaced;
    } else rewriteReferences(v, visit, `${path}.${k}`, depth + 1);
  }
}

/** Every Reference.reference in a resource tree, with the path of the Reference holding it (from `path` on). */
export function referencesIn(node: unknown, path = ''): [string, string][] {
  const found: [string, string][] = [];
  rewriteReferences(
    node,
    (ref, at) => {
      found.push([at, ref]);
      return undefined;
    },
    path,
  );
  return found;
}

export const collectReferences = (node: unknown): string[] => referencesIn(node).map(([, ref]) => ref);

/** `urn:uuid:` and `urn:oid:` references name a Bundle's entries by their fullUrls (R4 bundle.html#references), and nothing outside one. */
export const isBundleLocal = (ref: string): boolean => ref.startsWith('urn:uuid:') || ref.startsWith('urn:oid:');

/** `Patient?identifier=…`: a conditional reference, which a transaction resolves to the one resource it matches (R4 http.html#trules). */
export const isConditionalReference = (ref: string): boolean => /^[A-Z][A-Za-z]+\?/.test(ref);

/** 'Patient/123' → ['Patient', '123']; undefined for anything else (urn:uuid, absolute URLs, #contained). */
export function parseLiteral(ref: string | undefined): [string, string] | undefined {
  const m = ref ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
  return m ? [m[1], m[2]] : undefined;
}

/** `https://this/fhir/Patient/1` → `Patient/1`: a URL on this server's FHIR base as a relative reference; others as they are. */
export const relativeToBase = (baseUrl: string, url: string): string => (url.startsWith(`${baseUrl}/`) ? url.slice(baseUrl.length + 1) : url);

/**
 * `rewriteReferences` over what a JSON Patch writes or tests: Reference.reference inside each operation's
 * value, and a value that is one itself (a path ending in `/reference`); `path` is the operation's value
 * (`[0].value[1]`). Anything but an array of operations is left as it is, for the patch's own checks.
 */
export function rewritePatchReferences(ops: unknown, visit: (ref: string, path: string) => string | undefined): void {
  if (!Array.isArray(ops)) return;
  ops.forEach((op: unknown, i) => {
    if (typeof op !== 'object' || op === null) return;
    const record = op as Record<string, unknown>;
    const at = `[${i}].value`;
    if (typeof record.value === 'string' && typeof record.path === 'string' && record.path.endsWith('/reference')) {
      const replaced = visit(record.value, at);
      if (replaced !== undefined) record.value = replaced;
    } else rewriteReferences(record.value, visit, at);
  });
}

/**
 * Rewrites, in place, every reference by this server's absolute URL (`https://this/fhir/Patient/1`) as the
 * relative one it is (references.html: a relative reference is relative to the service base), so search,
 * `_include` and patient compartments, which read relative references, see it.
 */
export function relativizeOwnReferences(node: unknown, baseUrl: string): void {
  rewriteReferences(node, (ref) => relativeToBase(baseUrl, ref));
}
