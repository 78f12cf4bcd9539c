import { describe, expect, it } from 'vitest';
import { requestedSpecialties } from './network.js';

const CARDIOLOGY = '207RC0000X';
const NEUROLOGY = '2084N0400X';
const FAMILY = '207Q00000X';

describe('R6, R11 the specialty requested (ANT III, BSP D.VI, D.VI.b)', () => {
  it('R6, R11: the specialty the request names, else the care questioned\'s, else the professional chosen\'s', () => {
    expect(requestedSpecialties({ named: [NEUROLOGY], ofCareQuestioned: [CARDIOLOGY], ofRequestedProfessional: [FAMILY] })).toEqual([NEUROLOGY]);
    // The opinion on a specialist's care is of that specialty (R6), whoever is asked for.
    expect(requestedSpecialties({ named: [], ofCareQuestioned: [CARDIOLOGY], ofRequestedProfessional: [NEUROLOGY] })).toEqual([CARDIOLOGY]);
    expect(requestedSpecialties({ named: [], ofCareQuestioned: [], ofRequestedProfessional: [NEUROLOGY] })).toEqual([NEUROLOGY]);
    expect(requestedSpecialties({ named: [], ofCareQuestioned: [], ofRequestedProfessional: [] })).toEqual([]);
  });
});
