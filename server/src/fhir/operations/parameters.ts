import type { OperationDefinition, OperationDefinitionParameter, ParametersParameter, Resource } from 'fhir/r4.js';
import { z } from 'zod';
import { badRequest } from '../outcomes.js';
import { isSupportedType } from '../resourceTypes.js';
import type { FhirRequest } from '../request.js';

/** One input value: a primitive (as its JSON value), a complex datatype or a resource. */
export type ParamValue = string | number | boolean | Record<string, unknown> | Resource;

export type ParsedParameters = Map<string, ParamValue[]>;

/**
 * Reads an operation's inputs (Parameters body, a bare resource for a single resource input, or
 * query parameters for GET) and checks them against the OperationDefinition: unknown names,
 * cardinality, and value types are refused with 400.
 */
export function parseOperationInput(req: FhirRequest, definition: OperationDefinition): ParsedParameters {
  const inputs = (definition.parameter ?? []).filter((p) => p.use === 'in');
  const values: ParsedParameters = new Map();
  if (req.method === 'GET') {
    for (const [name, value] of req.query) add(values, inputs, name, value, 'query');
  } else {
    const body: unknown = req.body;
    const isObject = typeof body === 'object' && body !== null && !Array.isArray(body);
    if (isObject && (body as Resource).resourceType === 'Parameters') {
      for (const p of parametersOf(body, definition)) {
        const slot = valueOf(p);
        add(values, inputs, p.name, slot?.value, slot?.key ?? 'part');
      }
    } else if (isObject && typeof (body as Resource).resourceType === 'string') {
      const resource = body as Resource;
      const resourceInput = inputs.filter((p) => p.type === 'Resource' || p.type === resource.resourceType || p.type === 'Bundle');
      if (resourceInput.length !== 1) throw badRequest(`$${definition.code} takes a Parameters resource`);
      add(values, inputs, resourceInput[0].name, resource, 'resource');
    } else if (body !== undefined && !(isObject && Object.keys(body).length === 0)) {
      throw badRequest(`$${definition.code} takes a Parameters resource`);
    }
    for (const [name, value] of req.query) add(values, inputs, name, value, 'query');
  }
  for (const p of inputs) {
    const n = values.get(p.name)?.length ?? 0;
    if (n < p.min) throw badRequest(`$${definition.code}: parameter '${p.name}' is required`, p.name);
    if (p.max !== '*' && n > Number(p.max)) throw badRequest(`$${definition.code}: parameter '${p.name}' may appear at most ${p.max} time(s)`, p.name);
  }
  return values;
}

/**
 * Where a value came from: the query string (text, converted to the declared type), or in a body the
 * element that carried it: `valueInteger`, `valueReference`..., `resource`, or `part`.
 */
type Source = 'query' | string;

function add(values: ParsedParameters, inputs: OperationDefinitionParameter[], name: string, value: ParamValue | undefined, from: Source): void {
  const def = inputs.find((p) => p.name === name);
  if (!def) throw badRequest(`Unknown parameter '${name.slice(0, 64)}'`, name);
  if (value === undefined) throw badRequest(`Parameter '${name}' has no value`, name);
  if (from === 'query' && typeof value === 'string' && !isPrimitiveType(def.type)) throw badRequest(`Parameter '${name}' must be sent in a Parameters body`, name);
  if (from !== 'query') checkBodyElement(def, value, from);
  const list = values.get(name);
  if (list) list.push(checkType(def, value, from));
  else values.set(name, [checkType(def, value, from)]);
}

const PRIMITIVES = new Set(['string', 'code', 'uri', 'url', 'canonical', 'id', 'date', 'dateTime', 'instant', 'boolean', 'integer', 'positiveInt', 'unsignedInt', 'decimal', 'markdown']);
const isPrimitiveType = (type?: string) => type !== undefined && PRIMITIVES.has(type);
const INTEGERS = new Set(['integer', 'positiveInt', 'unsignedInt']);

/**
 * A body value must come in the element of its declared type (Parameters.parameter.value[x]): an
 * integer as valueInteger, a Reference as valueReference, a resource as `resource`; and a primitive
 * with its JSON type (valueInteger 5, not "5"). Only query-string text is converted.
 */
function checkBodyElement(def: OperationDefinitionParameter, value: ParamValue, element: string): void {
  const type = def.type;
  if (!type) return;
  if (isResourceType(type)) {
    const resourceType = element === 'resource' ? (value as { resourceType?: unknown }).resourceType : undefined;
    if (element !== 'resource' || (type !== 'Resource' && resourceType !== type)) {
      throw badRequest(`Parameter '${def.name}' is declared ${type}: send it as a ${type === 'Resource' ? '' : `${type} `}resource, not ${element === 'resource' ? `a ${String(resourceType).slice(0, 64)}` : element}`, def.name);
    }
    return;
  }
  const expected = `value${type[0].toUpperCase()}${type.slice(1)}`;
  if (element !== expected) throw badRequest(`Parameter '${def.name}' is declared ${type}: send it as ${expected}, not ${element}`, def.name);
  if (!isPrimitiveType(type)) return;
  const json = type === 'boolean' ? 'boolean' : INTEGERS.has(type) || type === 'decimal' ? 'number' : 'string';
  if (typeof value !== json) throw badRequest(`Parameter '${def.name}' must be a ${type} (a JSON ${json} in ${expected})`, def.name);
}

const isResourceType = (type: string) => type === 'Resource' || type === 'Bundle' || type === 'Binary' || type === 'Parameters' || isSupportedType(type);

function checkType(def: OperationDefinitionParameter, value: ParamValue, from: Source): ParamValue {
  const type = def.type;
  if (!type) return value;
  if (type === 'boolean' && typeof value === 'string' && from === 'query') {
    if (value !== 'true' && value !== 'false') throw badRequest(`Parameter '${def.name}' must be true or false`, def.name);
    return value === 'true';
  }
  if (INTEGERS.has(type)) {
    const n = typeof value === 'string' && from === 'query' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw badRequest(`Parameter '${def.name}' must be an integer`, def.name);
    return n;
  }
  if (isPrimitiveType(type) && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw badRequest(`Parameter '${def.name}' must be a ${type}`, def.name);
  }
  if (!isPrimitiveType(type) && (typeof value !== 'object' || value === null)) throw badRequest(`Parameter '${def.name}' must be a ${type}`, def.name);
  return value;
}

const ParameterShape: z.ZodType<ParametersParameter> = z.lazy(() =>
  z.looseObject({
    name: z.string().min(1).max(256),
    resource: z.looseObject({ resourceType: z.string() }).optional(),
    part: z.array(ParameterShape).optional(),
  }) as unknown as z.ZodType<ParametersParameter>,
);
const ParametersShape = z.looseObject({ resourceType: z.literal('Parameters'), parameter: z.array(ParameterShape).optional() });

/** A Parameters body is client input: its shape is checked before any of it is read. */
function parametersOf(body: unknown, definition: OperationDefinition): ParametersParameter[] {
  const parsed = ParametersShape.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(`$${definition.code}: the Parameters body is malformed at ${['Parameters', ...issue.path.map(String)].join('.')}: ${issue.message}`);
  }
  return parsed.data.parameter ?? [];
}

/** A parameter's one value and the element that carried it (R4: one value[x], or a resource, or parts). */
function valueOf(p: ParametersParameter): { key: string; value: ParamValue | undefined } | undefined {
  const fields = p as unknown as Record<string, unknown>;
  const keys = Object.keys(fields).filter((key) => (key === 'resource' || key.startsWith('value')) && fields[key] !== undefined);
  if (keys.length > 1) throw badRequest(`Parameter '${p.name}' carries more than one value (${keys.slice(0, 3).join(', ')})`, p.name);
  if (keys.length === 1) return { key: keys[0], value: fields[keys[0]] as ParamValue };
  if (p.part) return { key: 'part', value: Object.fromEntries(p.part.map((part) => [part.name, valueOf(part)?.value])) };
  return undefined;
}

export function single<T extends ParamValue>(params: ParsedParameters, name: string): T | undefined {
  return params.get(name)?.[0] as T | undefined;
}
