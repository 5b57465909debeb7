//! Per-account quotas as the documents page shows them: nothing while there
//! is room, and how much is used once the account gets close to a limit, so
//! that a refused "New document" or a full document is no surprise.

import type { AccountQuotas, AccountUsage } from './api';

/** From this share of a limit on, the page says how much is used. */
export const NEAR_LIMIT = 0.9;

/** One sentence per quota the account is close to (or at), in plain words. */
export function usageWarnings(usage: AccountUsage, quotas: AccountQuotas): string[] {
  const warnings: string[] = [];
  if (near(usage.documents, quotas.documents)) {
    warnings.push(`You are using ${count(usage.documents)} of ${count(quotas.documents!)} documents.`);
  }
  if (near(usage.bytes, quotas.bytes)) {
    warnings.push(`Your documents take ${formatBytes(usage.bytes)} of the ${formatBytes(quotas.bytes!)} of storage you may use.`);
  }
  return warnings;
}

function near(used: number, limit: number | null): boolean {
  return limit !== null && limit > 0 && used >= limit * NEAR_LIMIT;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `1.5 MiB`: the binary units the server's flags and messages use. */
export function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} bytes`;
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit + 1 < units.length) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
