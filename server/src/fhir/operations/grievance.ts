import type { OperationDefinition } from 'fhir/r4.js';
import { z } from 'zod';
import { GRIEVANCE_CATEGORIES, GRIEVANCE_OUTCOMES, type GrievanceAction } from '../../domain/grievance.js';
import { fileGrievance, handleGrievance } from '../../workflow/grievance.js';
import type { ProviderDelivery } from '../../workflow/providerDelivery.js';
import type { OperationDefinitionEntry } from '../context.js';
import { ifMatchVersion } from '../interactions/crud.js';
import { badRequest, forbidden } from '../outcomes.js';
import type { ParsedParameters } from './parameters.js';
import { parseOperationInput } from './parameters.js';
import { ID_RE, locationOf, versionHeaders } from '../responses.js';
import { CANONICAL_BASE } from '../systems.js';
import { callerAccess } from './review.js';
import { definitionIn } from './submit.js';

const Reference = z.object({ reference: z.string().min(1).max(512) }).loose();
/** The member's words: something to act on, and not a document upload (a grievance is a few paragraphs). */
const Statement = z.string().trim().min(1, 'must not be empty').max(10_000);

const FilingInput = z.object({
  patient: Reference.optional(),
  case: Reference.optional(),
  category: z.enum(GRIEVANCE_CATEGORIES),
  description: Statement,
  expedited: z.boolean().default(false),
});

const HandlingInput = z.object({
  note: Statement.optional(),
  outcome: z.enum(GRIEVANCE_OUTCOMES).optional(),
  resolution: Statement.optional(),
});

/** The parsed parameters (cardinality and types checked against the OperationDefinition), then their values (400 naming the parameter). */
function inputOf<T>(schema: z.ZodType<T>, params: ParsedParameters, code: string): T {
  const parsed = schema.safeParse(Object.fromEntries([...params].map(([name, values]) => [name, values[0]])));
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const name = String(issue.path[0] ?? '');
  throw badRequest(`$${code}: parameter '${name}' ${issue.message}`, name);
}

/** R17 (PHC VI.E): `Task/$file-grievance`, `Task/{id}/$acknowledge-grievance`, `Task/{id}/$resolve-grievance`. */
export function grievanceOperations(definitions: OperationDefinition[], delivery?: ProviderDelivery): OperationDefinitionEntry[] {
  const file = definitionIn(definitions, 'Task-file-grievance');
  const filing: OperationDefinitionEntry = {
    name: 'file-grievance',
    levels: ['type'],
    resourceTypes: ['Task'],
    interaction: 'create',
    affectsState: true,
    definition: `${CANONICAL_BASE}/OperationDefinition/Task-file-grievance`,
    async handler(req, ctx) {
      if (!req.auth) throw forbidden('Filing a grievance needs an authenticated user');
      const input = inputOf(FilingInput, parseOperationInput(req, file), file.code);
      const task = await fileGrievance(ctx.store, input, req.auth, callerAccess(req, ctx), { delivery });
      return { status: 201, body: task, headers: { ETag: versionHeaders(task).ETag, Location: locationOf(req.baseUrl, task) } };
    },
  };
  const handling = (action: GrievanceAction): OperationDefinitionEntry => {
    const definition = definitionIn(definitions, `Task-${action}-grievance`);
    return {
      name: `${action}-grievance`,
      levels: ['instance'],
      resourceTypes: ['Task'],
      interaction: 'update',
      affectsState: true,
      definition: `${CANONICAL_BASE}/OperationDefinition/Task-${action}-grievance`,
      async handler(req, ctx, args) {
        if (!req.auth) throw forbidden('Handling a grievance needs an authenticated user');
        if (!args.id || !ID_RE.test(args.id)) throw badRequest('Invalid Task id');
        const input = inputOf(HandlingInput, parseOperationInput(req, definition), definition.code);
        const task = await handleGrievance(ctx.store, args.id, action, input, req.auth, callerAccess(req, ctx), { delivery, ifMatch: ifMatchVersion(req) });
        return { status: 200, body: task, headers: { ETag: `W/"${task.meta?.versionId}"` } };
      },
    };
  };
  return [filing, handling('acknowledge'), handling('resolve')];
}
