import { describe, expect, it } from 'vitest';
import { nameWords, phoneticTexts, soundsOf } from './phonetic.js';

describe('the sounds of names', () => {
  it('splits a name into words without accents or apostrophes, at spaces, hyphens and other non-letters', () => {
    expect(nameWords("García-López O'Brien Jr.")).toEqual(['garcia', 'lopez', 'obrien', 'jr']);
    expect(nameWords('  123 ')).toEqual([]);
  });

  it('gives each word its Double Metaphone codes, primary and alternate, once each', () => {
    expect(soundsOf('garcia')).toEqual(['KRS']);
    expect(soundsOf('garsia')).toEqual(['KRS', 'KRX']);
    expect(soundsOf('smyth')).toEqual(['SM0', 'XMT']);
    expect(soundsOf('h')).toEqual([]);
  });

  it('reads the family and given names of a HumanName, not its prefix, suffix or text', () => {
    expect(phoneticTexts({ family: 'Smith', given: ['John', 'Paul'], prefix: ['Dr'], suffix: ['MD'], text: 'Dr John Paul Smith MD' })).toEqual(['Smith', 'John', 'Paul']);
    expect(phoneticTexts('Kaiser Permanente')).toEqual(['Kaiser Permanente']);
    expect(phoneticTexts(42)).toEqual([]);
  });
});
