/** Calls `visit` on every Reference.reference in a resource tree; a returned string replaces it. */
export function rewriteReferences(node: unknown, visit: (ref: string) => string | undefined, depth = 0): void {
  if (depth > 64 || typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const item of node) rewriteReferences(item, visit, depth + 1);
    return;
  }
  const record = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(record)) {
    if (k === 'reference' && typeof v === 'string') {
      const replaced = visit(v);
      if (replaced !== undefined) record[k] = replaced;
    } else rewriteReferences(v, visit, depth + 1);
  }
}

export function collectReferences(node: unknown): string[] {
  const refs: string[] = [];
  rewriteReferences(node, (ref) => {
    refs.push(ref);
    return undefined;
  });
  return refs;
}

/** 'Patient/123' → ['Patient', '123']; undefined for anything else (urn:uuid, absolute URLs, #contained). */
export function parseLiteral(ref: string | undefined): [string, string] | undefined {
  const m = ref ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
  return m ? [m[1], m[2]] : undefined;
}
