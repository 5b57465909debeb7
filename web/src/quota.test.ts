import { describe, expect, it } from 'vitest';

import { formatBytes, usageWarnings } from './quota';

const GiB = 1024 ** 3;

describe('usageWarnings', () => {
  it('says nothing while there is room', () => {
    expect(usageWarnings({ documents: 899, bytes: 0.89 * GiB }, { documents: 1000, bytes: GiB })).toEqual([]);
  });

  it('says nothing when the server sets no limit', () => {
    expect(usageWarnings({ documents: 10 ** 6, bytes: 10 * GiB }, { documents: null, bytes: null })).toEqual([]);
  });

  it('counts documents close to the limit', () => {
    expect(usageWarnings({ documents: 950, bytes: 0 }, { documents: 1000, bytes: GiB })).toEqual(['You are using 950 of 1,000 documents.']);
  });

  it('sizes storage close to the limit, and both when both are', () => {
    expect(usageWarnings({ documents: 3, bytes: 0.95 * GiB }, { documents: 3, bytes: GiB })).toEqual([
      'You are using 3 of 3 documents.',
      'Your documents take 973 MiB of the 1.0 GiB of storage you may use.',
    ]);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 bytes'],
    [1023, '1023 bytes'],
    [1536, '1.5 KiB'],
    [200 * 1024, '200 KiB'],
    [GiB, '1.0 GiB'],
  ])('%d is %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});
