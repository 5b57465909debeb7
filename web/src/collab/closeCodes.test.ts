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

  it("tells the owner's storage quota apart from the document size limit", () => {
    const quota = classifyClose(4413, "storage quota reached: the document's owner has no room left");
    expect(quota).toEqual({
      kind: 'stop',
      error: {
        code: 'quota',
        message: "This document can't grow: its owner's storage is full. Your last edits are kept on this device.",
        retryable: true,
      },
    });
    const size = classifyClose(4413, 'document size limit reached');
    expect(size.kind === 'stop' && size.error.code).toBe('too-large');
    // Only 4413 carries the quota: the same words under another code mean nothing special.
    const other = classifyClose(1009, 'storage quota reached');
    expect(other.kind === 'stop' && other.error.code).toBe('too-large');
  });
});
