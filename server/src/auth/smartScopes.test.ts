import { describe, expect, it } from 'vitest';
import { ScopeSet } from './smartScopes.js';

describe('granted scopes', () => {
  it('leave out query-restricted v2 resource scopes, which this server does not filter by, and keep the rest', () => {
    const allowed = ScopeSet.parse('launch/patient openid patient/*.rs user/*.rs');
    const granted = allowed.narrow(ScopeSet.parse('launch/patient openid patient/Condition.rs?category=encounter-diagnosis user/Condition.rs?category=x patient/Coverage.rs user/Task.r'));
    expect(granted.toString()).toBe('launch/patient openid patient/Coverage.rs user/Task.r');
  });

  it('never widen what the allowed set covers', () => {
    expect(ScopeSet.parse('patient/*.rs').narrow(ScopeSet.parse('patient/Task.cruds user/Task.rs')).toString()).toBe('');
  });
});
