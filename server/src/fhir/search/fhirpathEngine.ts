import { createRequire } from 'node:module';

type FhirPath = typeof import('fhirpath');
type R4Model = typeof import('fhirpath/fhir-context/r4/index.js');

const require = createRequire(import.meta.url);
let engine: FhirPath | undefined;
let model: R4Model | undefined;

/*
 * The FHIRPath engine (about 80 ms to load) and its R4 model (about 30 ms) are loaded the first time an
 * expression needs them rather than at start-up: search parameter expressions are compiled when a request
 * first indexes a write or checks a patient compartment, and most are plain paths that simplePath.ts walks
 * with the model alone.
 */
export const fhirpathEngine = (): FhirPath => (engine ??= require('fhirpath') as FhirPath);
export const r4Model = (): R4Model => (model ??= require('fhirpath/fhir-context/r4') as R4Model);
