/**
 * SMART App Launch 2.x scopes, v1 (`patient/*.read`) and v2 (`patient/Task.rs`, with optional
 * query restriction `?category=...`). Pure: parsing and checking, no I/O.
 */
export type ScopeContext = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ResourceScope {
  context: ScopeContext;
  resourceType: string; // '*' for all
  permissions: Set<Permission>;
  /** v2 query restriction, e.g. [['category', 'laboratory']]. */
  query: [string, string][];
  raw: string;
}

const SCOPE_RE = /^(patient|user|system)\/([A-Za-z]+|\*)\.(read|write|\*|c?r?u?d?s?)(\?.*)?$/;

export function parseScope(raw: string): ResourceScope | undefined {
  const m = SCOPE_RE.exec(raw);
  if (!m || m[3] === '') return undefined;
  const [, context, resourceType, perms, query] = m;
  const permissions = new Set<Permission>(
    perms === 'read' ? ['r', 's'] : perms === 'write' ? ['c', 'u', 'd'] : perms === '*' ? ['c', 'r', 'u', 'd', 's'] : ([...perms] as Permission[]),
  );
  if (query && perms.length > 5) return undefined;
  return { context: context as ScopeContext, resourceType, permissions, query: query ? [...new URLSearchParams(query.slice(1)).entries()] : [], raw };
}

/** Reads and searches only: a query cannot be checked against a write before it is made. */
const isReadOnly = (scope: ResourceScope): boolean => [...scope.permissions].every((p) => p === 'r' || p === 's');

export class ScopeSet {
  readonly resourceScopes: ResourceScope[];
  readonly other: Set<string>;

  constructor(readonly scopes: string[]) {
    this.resourceScopes = [];
    this.other = new Set();
    for (const s of scopes) {
      const parsed = parseScope(s);
      if (parsed) this.resourceScopes.push(parsed);
      else this.other.add(s);
    }
  }

  static parse(scope: string | undefined): ScopeSet {
    return new ScopeSet((scope ?? '').split(/\s+/).filter(Boolean));
  }

  has(scope: string): boolean {
    return this.other.has(scope);
  }

  /** The resource scopes that grant `permission` on `resourceType` (unrestricted ones first). */
  granting(resourceType: string, permission: Permission): ResourceScope[] {
    return this.resourceScopes
      .filter((s) => (s.resourceType === '*' || s.resourceType === resourceType) && s.permissions.has(permission))
      .sort((a, b) => a.query.length - b.query.length);
  }

  /** Whether a scope grants the whole type; a query-restricted v2 scope grants only the resources its query matches. */
  allows(resourceType: string, permission: Permission): boolean {
    return this.granting(resourceType, permission).some((s) => s.query.length === 0);
  }

  /** The query-restricted v2 scopes that grant `permission` on `resourceType` (reads and searches only). */
  restricted(resourceType: string, permission: Permission): ResourceScope[] {
    return this.granting(resourceType, permission).filter((s) => s.query.length > 0);
  }

  /**
   * Scopes of `requested` that are also covered by this set (for refresh and token exchange: never wider).
   * A query-restricted v2 resource scope (`patient/Observation.rs?category=laboratory`) is kept only when
   * the server can hold reads and searches to its query (`restrictable`); granting one it cannot enforce
   * would report access the token does not have.
   */
  narrow(requested: ScopeSet, restrictable: (scope: ResourceScope) => boolean = () => false): ScopeSet {
    return new ScopeSet(
      requested.scopes.filter((s) => {
        const parsed = parseScope(s);
        return (!parsed?.query.length || (isReadOnly(parsed) && parsed.resourceType !== '*' && restrictable(parsed))) && this.covers(s);
      }),
    );
  }

  covers(scope: string): boolean {
    const want = parseScope(scope);
    if (!want) return this.other.has(scope);
    return this.resourceScopes.some(
      (have) =>
        have.context === want.context &&
        (have.resourceType === '*' || have.resourceType === want.resourceType) &&
        [...want.permissions].every((p) => have.permissions.has(p)) &&
        have.query.every(([k, v]) => want.query.some(([k2, v2]) => k === k2 && v === v2)),
    );
  }

  toString(): string {
    return this.scopes.join(' ');
  }
}
