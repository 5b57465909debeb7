//! The formatting toolbar: one tab stop, arrow keys move between buttons
//! (WAI-ARIA toolbar pattern); every button names its shortcut.

import type { Editor } from '@tiptap/core';
import { useEditorState } from '@tiptap/react';
import { useRef, useState, type KeyboardEvent, type ReactNode } from 'react';

import { Icon, type IconName } from '../components/Icon';
import { formatShortcut } from './shortcuts';

interface Item {
  id: string;
  label: string;
  shortcut?: string;
  icon?: IconName;
  text?: ReactNode;
  active?: (e: Editor) => boolean;
  enabled?: (e: Editor) => boolean;
  run: (e: Editor) => void;
}

const HEADING_LEVELS = [1, 2, 3] as const;

function groups(onLink: () => void): Item[][] {
  return [
    [
      { id: 'undo', label: 'Undo', shortcut: 'Mod-z', icon: 'undo', enabled: (e) => e.can().undo(), run: (e) => e.chain().focus().undo().run() },
      { id: 'redo', label: 'Redo', shortcut: 'Mod-Shift-z', icon: 'redo', enabled: (e) => e.can().redo(), run: (e) => e.chain().focus().redo().run() },
    ],
    HEADING_LEVELS.map((level) => ({
      id: `h${level}`,
      label: `Heading ${level}`,
      shortcut: `Mod-Alt-${level}`,
      text: <span className="tb-text">H{level}</span>,
      active: (e: Editor) => e.isActive('heading', { level }),
      run: (e: Editor) => e.chain().focus().toggleHeading({ level }).run(),
    })),
    [
      { id: 'bold', label: 'Bold', shortcut: 'Mod-b', text: <b className="tb-text">B</b>, active: (e) => e.isActive('bold'), run: (e) => e.chain().focus().toggleBold().run() },
      { id: 'italic', label: 'Italic', shortcut: 'Mod-i', text: <i className="tb-text tb-serif">I</i>, active: (e) => e.isActive('italic'), run: (e) => e.chain().focus().toggleItalic().run() },
      { id: 'underline', label: 'Underline', shortcut: 'Mod-u', text: <u className="tb-text">U</u>, active: (e) => e.isActive('underline'), run: (e) => e.chain().focus().toggleUnderline().run() },
      { id: 'strike', label: 'Strikethrough', shortcut: 'Mod-Shift-s', text: <s className="tb-text">S</s>, active: (e) => e.isActive('strike'), run: (e) => e.chain().focus().toggleStrike().run() },
      { id: 'code', label: 'Inline code', shortcut: 'Mod-e', icon: 'code', active: (e) => e.isActive('code'), run: (e) => e.chain().focus().toggleCode().run() },
      { id: 'link', label: 'Link', shortcut: 'Mod-k', icon: 'link', active: (e) => e.isActive('link'), run: () => onLink() },
    ],
    [
      { id: 'bulletList', label: 'Bulleted list', shortcut: 'Mod-Shift-8', icon: 'bulletList', active: (e) => e.isActive('bulletList'), run: (e) => e.chain().focus().toggleBulletList().run() },
      { id: 'orderedList', label: 'Numbered list', shortcut: 'Mod-Shift-7', icon: 'orderedList', active: (e) => e.isActive('orderedList'), run: (e) => e.chain().focus().toggleOrderedList().run() },
      { id: 'taskList', label: 'Checklist', shortcut: 'Mod-Shift-9', icon: 'taskList', active: (e) => e.isActive('taskList'), run: (e) => e.chain().focus().toggleTaskList().run() },
    ],
    [
      { id: 'blockquote', label: 'Quote', shortcut: 'Mod-Shift-b', icon: 'blockquote', active: (e) => e.isActive('blockquote'), run: (e) => e.chain().focus().toggleBlockquote().run() },
      { id: 'codeBlock', label: 'Code block', shortcut: 'Mod-Alt-c', icon: 'codeBlock', active: (e) => e.isActive('codeBlock'), run: (e) => e.chain().focus().toggleCodeBlock().run() },
      { id: 'rule', label: 'Horizontal line', shortcut: 'Mod-Shift-h', icon: 'rule', run: (e) => e.chain().focus().setHorizontalRule().run() },
    ],
  ];
}

export function Toolbar({ editor, onLink, disabled }: { editor: Editor; onLink: () => void; disabled?: boolean }) {
  const itemGroups = groups(onLink);
  const flat = itemGroups.flat();
  const state = useEditorState({
    editor,
    selector: ({ editor: e }) =>
      Object.fromEntries(
        flat.map((item) => [item.id, { active: item.active?.(e) ?? false, enabled: item.enabled?.(e) ?? true }]),
      ) as Record<string, { active: boolean; enabled: boolean }>,
    equalityFn: (a, b) => JSON.stringify(a) === JSON.stringify(b),
  });
  const ref = useRef<HTMLDivElement>(null);
  // Roving tab stop: the one button Tab lands on.
  const [active, setActive] = useState(0);

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const buttons = [...(ref.current?.querySelectorAll<HTMLButtonElement>('button:not(:disabled)') ?? [])];
    const index = buttons.indexOf(document.activeElement as HTMLButtonElement);
    if (index < 0) return;
    let next = -1;
    if (event.key === 'ArrowRight') next = (index + 1) % buttons.length;
    else if (event.key === 'ArrowLeft') next = (index - 1 + buttons.length) % buttons.length;
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = buttons.length - 1;
    if (next < 0) return;
    event.preventDefault();
    setActive(Number(buttons[next]!.dataset.index));
    buttons[next]!.focus();
  };

  let index = -1;
  return (
    <div className="toolbar" role="toolbar" aria-label="Formatting" aria-controls="editor-content" ref={ref} onKeyDown={onKeyDown}>
      {itemGroups.map((group, gi) => (
        <div className="toolbar-group" key={gi} role="group">
          {group.map((item) => {
            const s = state?.[item.id] ?? { active: false, enabled: true };
            index += 1;
            const tabIndex = index === active ? 0 : -1;
            const title = item.shortcut ? `${item.label} (${formatShortcut(item.shortcut)})` : item.label;
            return (
              <button
                key={item.id}
                type="button"
                className="tb-button"
                tabIndex={tabIndex}
                aria-label={item.label}
                aria-keyshortcuts={item.shortcut?.replace('Mod', 'Control')}
                aria-pressed={item.active ? s.active : undefined}
                title={title}
                // Unavailable commands (nothing to undo) stay focusable, as the
                // ARIA toolbar pattern advises; a read-only editor disables all.
                disabled={disabled}
                aria-disabled={!s.enabled || undefined}
                data-testid={`tb-${item.id}`}
                data-index={index}
                // Keep the editor's selection: don't move focus on mouse down.
                onMouseDown={(e) => e.preventDefault()}
                onClick={() => {
                  if (s.enabled) item.run(editor);
                }}
              >
                {item.icon ? <Icon name={item.icon} /> : item.text}
              </button>
            );
          })}
        </div>
      ))}
    </div>
  );
}
