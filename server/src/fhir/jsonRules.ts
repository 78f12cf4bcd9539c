import { isPrimitiveType, tryGetDataType, type InternalSchemaElement, type InternalTypeSchema } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from 'fhir/r4.js';
import { narrativeProblem } from './narrative.js';
import { temporalProblem } from './search/dates.js';

/**
 * The R4 JSON rules that @medplum/core's validator lets through, checked in one walk over the resource
 * along the R4 type definitions Medplum has indexed:
 * - no empty arrays, objects or strings (https://hl7.org/fhir/R4/json.html, invariant ele-1);
 * - one type at most for a choice element (`deceasedBoolean` or `deceasedDateTime`);
 * - integer, positiveInt and unsignedInt within 32 bits (https://hl7.org/fhir/R4/datatypes.html#integer);
 * - date, dateTime and instant as R4 writes them and on the calendar (`temporalProblem`);
 * - no member named like an Object.prototype property (`__proto__`, `constructor`): Medplum looks element
 *   names up with `in` on a plain object, so those pass as known elements;
 * - Narrative XHTML (txt-1, txt-2), wherever a Narrative sits: contained, bundled or in Parameters.
 * Elements Medplum reports as unknown are not entered. Paths are named as Medplum names them (`Patient.deceased[x]`).
 */
export function jsonRuleIssues(resource: Resource): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const schema = tryGetDataType(resource.resourceType);
  if (schema) checkObject(resource as unknown as JsonObject, schema, resource.resourceType, issues);
  return issues;
}

/** An array as R4 JSON holds it: left out when empty (json.html, ele-1). */
export const nonEmpty = <T>(values: T[]): T[] | undefined => (values.length ? values : undefined);

type JsonObject = Record<string, unknown>;

const PROTOTYPE_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));
const isPrototypeName = (key: string) => PROTOTYPE_NAMES.has(key) || (key.startsWith('_') && PROTOTYPE_NAMES.has(key.slice(1)));
const INTEGER_TYPES = new Set(['integer', 'positiveInt', 'unsignedInt']);
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** An element of the schema that a JSON member holds: `birthDate`, `_birthDate` (its id and extensions), `deceasedBoolean`. */
interface MemberElement {
  /** As Medplum names it: `birthDate`, `deceased[x]`. */
  name: string;
  /** The type of each value: `date`, `Element` for a `_birthDate`, `boolean` for `deceasedBoolean`. */
  type: string;
  /** For a choice: the type named in the member (`Boolean`), to find two types given for one element. */
  choiceType?: string;
}

function checkObject(object: JsonObject, schema: InternalTypeSchema, path: string, issues: OperationOutcomeIssue[]): void {
  /** The member holding each choice element so far: `deceased[x]` → `deceasedBoolean`. */
  const choices = new Map<string, { key: string; choiceType: string }>();
  for (const key of Object.keys(object)) {
    if (key === 'resourceType') {
      // Medplum skips this name in any object; it belongs only to a resource.
      if (schema.kind !== 'resource') issues.push(structureIssue(`${path}.${key}`, `Invalid additional property "${key}"`));
      continue;
    }
    if (isPrototypeName(key)) {
      issues.push(structureIssue(`${path}.${key}`, `Invalid additional property "${key}"`));
      continue;
    }
    const member = memberElement(schema, key);
    if (!member) continue;
    const elementPath = `${path}.${member.name}`;
    if (member.choiceType) {
      const other = choices.get(member.name);
      if (other && other.choiceType !== member.choiceType) issues.push(structureIssue(elementPath, `Only one type may be given for ${member.name}: found ${other.key} and ${key}`));
      choices.set(member.name, { key, choiceType: member.choiceType });
    }
    checkMember(object[key], member.type, elementPath, issues);
  }
}

function checkMember(value: unknown, type: string, path: string, issues: OperationOutcomeIssue[]): void {
  if (!Array.isArray(value)) checkValue(value, type, path, issues);
  else if (value.length === 0) issues.push(structureIssue(path, 'Invalid empty array'));
  else value.forEach((item, i) => checkValue(item, type, `${path}[${i}]`, issues));
}

/** Nulls (allowed only in arrays of primitives), arrays in arrays and wrong JSON types are left to Medplum, which reports them. */
function checkValue(value: unknown, type: string, path: string, issues: OperationOutcomeIssue[]): void {
  const problem = typeof value === 'object' ? objectProblem(value) : primitiveProblem(value, type);
  if (problem) issues.push(structureIssue(path, problem));
  else if (isObject(value) && !isPrimitiveType(type)) {
    const schema = tryGetDataType(type === 'Resource' ? String(value.resourceType) : type);
    if (schema) checkObject(value, schema, path, issues);
  }
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function objectProblem(value: object | null): string | undefined {
  return isObject(value) && Object.keys(value).length === 0 ? 'Invalid empty object' : undefined;
}

function primitiveProblem(value: unknown, type: string): string | undefined {
  if (value === '') return 'Invalid empty string';
  if (typeof value === 'number' && INTEGER_TYPES.has(type) && (value < INT32_MIN || value > INT32_MAX)) return `${type} must lie within ${INT32_MIN}..${INT32_MAX}`;
  if (typeof value !== 'string') return undefined;
  if (isTemporal(type)) return temporalProblem(value, type);
  if (type !== 'xhtml') return undefined;
  const narrative = narrativeProblem(value);
  return narrative && `Invalid narrative XHTML: ${narrative}`;
}

const TEMPORAL_TYPES = new Set(['date', 'dateTime', 'instant']);
const isTemporal = (type: string): type is 'date' | 'dateTime' | 'instant' => TEMPORAL_TYPES.has(type);

/** The schema element a JSON member name stands for, or undefined for a name Medplum reports as unknown. */
function memberElement(schema: InternalTypeSchema, key: string): MemberElement | undefined {
  const isExtensionOfPrimitive = key.startsWith('_');
  const name = isExtensionOfPrimitive ? key.slice(1) : key;
  const element = Object.hasOwn(schema.elements, name) ? schema.elements[name] : undefined;
  if (element) return { name, type: isExtensionOfPrimitive ? 'Element' : singleType(element) };
  const choice = choiceElement(schema, name);
  if (!choice) return undefined;
  return { name: choice.name, type: isExtensionOfPrimitive ? 'Element' : choice.type, choiceType: choice.choiceType };
}

function singleType(element: InternalSchemaElement): string {
  return element.type[0]?.code ?? 'Element';
}

/** `deceasedDateTime` as the `deceased[x]` element with type `dateTime`. */
function choiceElement(schema: InternalTypeSchema, name: string): Required<MemberElement> | undefined {
  for (let i = 1; i < name.length; i++) {
    if (!isUpperCaseLetter(name[i])) continue;
    const elementName = `${name.slice(0, i)}[x]`;
    if (!Object.hasOwn(schema.elements, elementName)) continue;
    const choiceType = name.slice(i);
    const type = schema.elements[elementName].type.find((t) => t.code.charAt(0).toUpperCase() + t.code.slice(1) === choiceType);
    return type && { name: elementName, type: type.code, choiceType };
  }
  return undefined;
}

const isUpperCaseLetter = (char: string) => char >= 'A' && char <= 'Z';

function structureIssue(expression: string, text: string): OperationOutcomeIssue {
  return { severity: 'error', code: 'structure', details: { text }, diagnostics: text, expression: [expression] };
}
