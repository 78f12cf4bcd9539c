import type { AccessPolicy, Interaction } from '../fhir/context.js';
import { forbidden, insufficientScope } from '../fhir/outcomes.js';
import { isDirectoryType } from '../fhir/resourceTypes.js';
import type { AccessContext, UserRole } from '../fhir/request.js';
import { type Permission, type ScopeContext, ScopeSet } from './smartScopes.js';

const PERMISSION: Record<Interaction, Permission> = {
  read: 'r',
  vread: 'r',
  history: 'r',
  search: 's',
  create: 'c',
  update: 'u',
  patch: 'u',
  delete: 'd',
  operation: 'r',
};

const WRITES = new Set<Permission>(['c', 'u', 'd']);

const scopeSets = new WeakMap<AccessContext, ScopeSet>();
const scopesOf = (ctx: AccessContext): ScopeSet => {
  let set = scopeSets.get(ctx);
  if (!set) scopeSets.set(ctx, (set = new ScopeSet(ctx.scopes)));
  return set;
};

/**
 * SMART scopes per interaction and type, and the patient compartment a patient-level grant is
 * bound to. `isCompartmentType` says which types belong to a patient's compartment (the R4
 * CompartmentDefinition); other types (Practitioner, Organization...) are directory data.
 */
export function createAccessPolicy(isCompartmentType: (type: string) => boolean): AccessPolicy {
  /**
   * The patient the grant of this interaction on this type is bound to, or undefined if a user/system scope
   * grants it. Judged by the grants carrying that permission alone: `patient/*.cruds user/*.rs` may read
   * anyone's data but write only the patient's.
   */
  function patientCompartment(ctx: AccessContext, resourceType: string, interaction: Interaction): string | undefined {
    if (ctx.roles.includes('member') && ctx.patient && isCompartmentType(resourceType)) return `Patient/${ctx.patient}`;
    // Only a grant of the whole type lifts the compartment: a query-restricted one (v2 `user/Condition.rs?category=…`) grants nothing here.
    if (scopesOf(ctx).granting(resourceType, PERMISSION[interaction]).some((g) => g.context !== 'patient' && g.query.length === 0)) return undefined;
    if (!isCompartmentType(resourceType)) return undefined;
    return ctx.patient ? `Patient/${ctx.patient}` : 'Patient/-none-';
  }

  /** The patient a `patient/` grant of the type is bound to; a member is bound to their own whatever the scope. */
  function boundTo(ctx: AccessContext, resourceType: string, context: ScopeContext): string | undefined {
    if (!isCompartmentType(resourceType)) return undefined;
    if (context !== 'patient' && !ctx.roles.includes('member')) return undefined;
    return ctx.patient ? `Patient/${ctx.patient}` : 'Patient/-none-';
  }

  return {
    restrictedGrants(ctx, resourceType, interaction) {
      requireRoleFor(ctx, resourceType, PERMISSION[interaction], interaction);
      return scopesOf(ctx)
        .restricted(resourceType, PERMISSION[interaction])
        .map((scope) => ({ query: scope.query, compartment: boundTo(ctx, resourceType, scope.context) }));
    },
    requireScope(ctx, resourceType, interaction) {
      const permission = PERMISSION[interaction];
      requireRoleFor(ctx, resourceType, permission, interaction);
      if (scopesOf(ctx).allows(resourceType, permission)) return;
      const needed = `${ctx.kind === 'patient' ? 'patient' : ctx.kind === 'system' ? 'system' : 'user'}/${resourceType}.${permission}`;
      throw insufficientScope(`The token's scopes do not allow ${interaction} on ${resourceType} (needs e.g. ${needed})`, needed);
    },
    patientCompartment,
    mayAccess(ctx, resourceType, interaction, compartmentsOf) {
      const compartment = patientCompartment(ctx, resourceType, interaction);
      if (!compartment) return true;
      const resourceCompartments = compartmentsOf();
      return resourceCompartments.includes(compartment) || (!isCompartmentType(resourceType) && resourceCompartments.length === 0);
    },
  };
}

/** What only some roles may do whatever the scopes say. */
function requireRoleFor(ctx: AccessContext, resourceType: string, permission: Permission, interaction: Interaction): void {
  // The audit log says who looked at which member: plan auditors and administrators, and the plan's own systems (a
  // backend client acting for no organization; a delegated group's system acts for its group and is not one).
  const plansOwnSystem = ctx.kind === 'system' && !ctx.organization;
  if (resourceType === 'AuditEvent' && !plansOwnSystem && !ctx.roles.some((r) => r === 'auditor' || r === 'plan-admin')) {
    throw forbidden('Only plan auditors may read the audit log');
  }
  if (isDirectoryType(resourceType) && WRITES.has(permission) && !ctx.roles.includes('plan-admin')) {
    throw forbidden(`Only plan administration may ${interaction} ${resourceType} resources (the provider directory)`);
  }
}

/** Review operations check the caller's role (R10, R11): 403 naming the roles that may. */
export function requireRole(ctx: AccessContext | undefined, roles: UserRole[], action: string): void {
  if (!ctx) return;
  if (ctx.roles.some((r) => roles.includes(r))) return;
  throw forbidden(`Only ${roles.join(' or ')} may ${action}`);
}
