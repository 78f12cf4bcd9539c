import { describe, expect, it } from 'vitest';
import { ScopeSet } from './smartScopes.js';

describe('granted scopes', () => {
  const requested = ScopeSet.parse('launch/patient openid patient/Condition.rs?category=encounter-diagnosis user/Condition.rs?category=x patient/Coverage.rs user/Task.r');

  it('leave out query-restricted v2 resource scopes the server cannot hold reads and searches to, and keep the rest', () => {
    const allowed = ScopeSet.parse('launch/patient openid patient/*.rs user/*.rs');
    expect(allowed.narrow(requested).toString()).toBe('launch/patient openid patient/Coverage.rs user/Task.r');
    const byCategoryX = allowed.narrow(requested, (scope) => scope.query.some(([name, value]) => name === 'category' && value === 'x'));
    expect(byCategoryX.toString()).toBe('launch/patient openid user/Condition.rs?category=x patient/Coverage.rs user/Task.r');
  });

  it('keep a query-restricted scope for reads and searches of one type only', () => {
    const allowed = ScopeSet.parse('patient/*.cruds');
    const granted = allowed.narrow(ScopeSet.parse('patient/Condition.cruds?category=x patient/*.rs?category=x patient/Condition.s?category=x'), () => true);
    expect(granted.toString()).toBe('patient/Condition.s?category=x');
    expect(granted.allows('Condition', 's')).toBe(false);
    expect(granted.restricted('Condition', 's').map((s) => s.query)).toEqual([[['category', 'x']]]);
    expect(granted.restricted('Condition', 'r')).toEqual([]);
  });

  it('never widen what the allowed set covers', () => {
    expect(ScopeSet.parse('patient/*.rs').narrow(ScopeSet.parse('patient/Task.cruds user/Task.rs')).toString()).toBe('');
  });
});
