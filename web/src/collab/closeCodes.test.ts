import { describe, expect, it } from 'vitest';

import { classifyClose } from './closeCodes';

describe('classifyClose', () => {
  it.each([null, 1000, 1001, 1006, 1011, 4409, 4429, 4500, 4999])('reconnects after %s', (code) => {
    expect(classifyClose(code).kind).toBe('reconnect');
  });

  it.each([
    [4404, 'deleted', false],
    [4413, 'too-large', true],
    [1009, 'too-large', true],
    [4400, 'malformed', true],
    [4401, 'permission-denied', true],
    [4403, 'permission-denied', true],
    [4418, 'refused', true],
  ] as const)('stops after %s with %s', (code, errorCode, retryable) => {
    const verdict = classifyClose(code, 'why');
    expect(verdict.kind).toBe('stop');
    if (verdict.kind !== 'stop') return;
    expect(verdict.error.code).toBe(errorCode);
    expect(verdict.error.retryable).toBe(retryable);
    expect(verdict.error.message.length).toBeGreaterThan(10);
  });
});
