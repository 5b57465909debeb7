const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** Render a ProseMirror-style key ("Mod-Shift-8") for people: "Ctrl+Shift+8" or "⌘⇧8". */
export function formatShortcut(keys: string): string {
  const parts = keys.split('-');
  if (isMac) {
    const map: Record<string, string> = { Mod: '⌘', Shift: '⇧', Alt: '⌥', Ctrl: '⌃' };
    return parts.map((p) => map[p] ?? p.toUpperCase()).join('');
  }
  const map: Record<string, string> = { Mod: 'Ctrl', Alt: 'Alt', Shift: 'Shift' };
  return parts.map((p) => map[p] ?? p.toUpperCase()).join('+');
}
