import { JSON_PATCH } from '../fhir/request.js';

/**
 * Content negotiation (R4 http.html#mime-type, #version-parameter): this server reads and writes FHIR R4
 * JSON alone. Pure functions over header and parameter values; fhirRoutes.ts turns their refusals into
 * 406 (what the client asked to receive) and 415 (what it sent).
 */

interface MediaType {
  type: string;
  params: Map<string, string>;
}

/** `_format` values for JSON (R4 http.html#mime-type); XML, Turtle and HTML are not served. */
const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json']);
/** Accept ranges JSON answers. */
const JSON_RANGES = new Set(['application/fhir+json', 'application/json', 'application/*', '*/*']);
/** Bodies read: FHIR JSON, plain JSON, and JSON Patch for a PATCH alone. */
const BODY_TYPES = new Set(['application/fhir+json', 'application/json']);

export function parseMediaType(value: string): MediaType {
  const [type, ...rest] = value.split(';');
  const params = new Map<string, string>();
  for (const param of rest) {
    const eq = param.indexOf('=');
    if (eq > 0) params.set(param.slice(0, eq).trim().toLowerCase(), param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
  }
  return { type: type.trim().toLowerCase(), params };
}

/** A `fhirVersion` parameter, if given, must name R4: `4.0` (or a 4.0.x patch release). */
const speaksVersion = (media: MediaType): boolean => {
  const version = media.params.get('fhirversion');
  return version === undefined || /^4\.0(\.\d+)?$/.test(version);
};

/**
 * Why the response formats asked for cannot be served, or undefined. `_format` overrides Accept
 * (R4 http.html#mime-type); its `+` arrives decoded as a space from a query string.
 */
export function notAcceptableReason(formats: string[], accept: string | undefined): string | undefined {
  if (formats.length) {
    const asked = formats.map((f) => parseMediaType(f.replace(/ /g, '+')));
    if (asked.some((m) => !JSON_FORMATS.has(m.type))) return `_format '${formats.join(',')}' is not served: this server speaks FHIR JSON only (json, application/fhir+json)`;
    if (!asked.every(speaksVersion)) return 'This server speaks FHIR R4 only (fhirVersion=4.0)';
    return undefined;
  }
  if (!accept?.trim()) return undefined;
  const ranges = accept.split(',').map(parseMediaType).filter((m) => Number(m.params.get('q') ?? 1) > 0);
  const json = ranges.filter((m) => JSON_RANGES.has(m.type));
  if (!json.length) return `Accept '${accept}' names no format this server speaks: FHIR JSON only (application/fhir+json)`;
  if (!json.some(speaksVersion)) return 'This server speaks FHIR R4 only (fhirVersion=4.0)';
  return undefined;
}

/** Why a request body of this Content-Type cannot be read, or undefined. JSON Patch patches, it creates nothing. */
export function unsupportedBodyReason(contentType: string, method: string, formSearch: boolean): string | undefined {
  const media = parseMediaType(contentType);
  if (formSearch && media.type === 'application/x-www-form-urlencoded') return undefined;
  if (media.type === JSON_PATCH && method === 'PATCH') return undefined;
  if (media.type === JSON_PATCH) return `Content-Type ${JSON_PATCH} is for PATCH only; ${method} takes application/fhir+json`;
  if (!BODY_TYPES.has(media.type)) return `Content-Type '${media.type || '(none)'}' is not supported; use application/fhir+json`;
  if (!speaksVersion(media)) return 'This server reads FHIR R4 only (fhirVersion=4.0)';
  return undefined;
}
