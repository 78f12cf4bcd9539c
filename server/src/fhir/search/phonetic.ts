import { doubleMetaphone } from 'double-metaphone';
import { normalize } from './normalize.js';
import type { SearchParamDef } from './registry.js';

/**
 * R4's `phonetic` parameters (individual-phonetic on Patient, Practitioner, RelatedPerson and Person;
 * Organization-phonetic; InsurancePlan-phonetic) match "using some kind of phonetic matching algorithm".
 * Their values are indexed and searched as Double Metaphone codes (tokens), not as strings: Garsia finds
 * Garcia, and a prefix of a name finds only names that sound like it.
 */
export const isPhonetic = (def: SearchParamDef): boolean => def.code === 'phonetic' && def.type === 'string';

/** The parts of a HumanName the phonetic parameters match ("a portion of either family or given name"). */
const NAME_PARTS = ['family', 'given'];

/** The token of a sound (a Double Metaphone code) of a phonetic parameter's value. */
export const soundToken = (code: string, sound: string): string => `${code}||${sound}`;

/**
 * The words of a name as they are sounded out: accents dropped as string search drops them (Double Metaphone
 * sounds "García" as KRK but "Garcia" as KRS), apostrophes dropped (O'Brien is OBrien), split at anything else
 * that is not a letter (spaces, hyphens of double surnames).
 */
export function nameWords(text: string): string[] {
  return normalize(text)
    .replace(/['\u2019]/g, '')
    .split(/[^\p{L}]+/u)
    .filter(Boolean);
}

/** A word's Double Metaphone codes: primary and alternate (once when they agree); none when it has no sound. */
export function soundsOf(word: string): string[] {
  return [...new Set(doubleMetaphone(word))].filter(Boolean);
}

/** The texts a value of a phonetic parameter holds: a HumanName's family and given names, or a plain string. */
export function phoneticTexts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object' || value === null) return [];
  const name = value as Record<string, unknown>;
  return NAME_PARTS.flatMap((part) => [name[part]].flat()).filter((text): text is string => typeof text === 'string');
}
