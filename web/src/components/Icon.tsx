//! Small inline icons (20×20, stroke = currentColor), so no icon font or
//! extra request is needed and they inherit colour and focus styles.

import type { ReactNode } from 'react';

const paths: Record<string, ReactNode> = {
  code: (
    <>
      <polyline points="7 5.5 2.5 10 7 14.5" />
      <polyline points="13 5.5 17.5 10 13 14.5" />
    </>
  ),
  bulletList: (
    <>
      <circle cx="4" cy="5" r="1.2" fill="currentColor" />
      <circle cx="4" cy="10" r="1.2" fill="currentColor" />
      <circle cx="4" cy="15" r="1.2" fill="currentColor" />
      <path d="M8 5h9M8 10h9M8 15h9" />
    </>
  ),
  orderedList: (
    <>
      <path d="M3 3.5l1.2-.7V7.5M2.8 7.5h2.6" strokeWidth="1.3" />
      <path d="M2.8 12.2a1.3 1.3 0 1 1 2.1 1.1L2.8 16.5h2.6" strokeWidth="1.3" />
      <path d="M8.5 5h8.5M8.5 10h8.5M8.5 15h8.5" />
    </>
  ),
  taskList: (
    <>
      <rect x="2.5" y="2.8" width="5" height="5" rx="1" />
      <path d="M3.8 5.3l1 1 1.6-2" strokeWidth="1.4" />
      <rect x="2.5" y="12.2" width="5" height="5" rx="1" />
      <path d="M10 5.3h7M10 14.7h7" />
    </>
  ),
  blockquote: (
    <>
      <path d="M3 4v12" strokeWidth="2.2" />
      <path d="M7.5 6h9.5M7.5 10h9.5M7.5 14h6" />
    </>
  ),
  codeBlock: (
    <>
      <rect x="2" y="3" width="16" height="14" rx="2" />
      <polyline points="7.5 7.5 5 10 7.5 12.5" />
      <polyline points="12.5 7.5 15 10 12.5 12.5" />
    </>
  ),
  rule: (
    <>
      <path d="M2.5 10h15" strokeWidth="2" />
      <path d="M5 5.5h10M5 14.5h10" opacity="0.45" />
    </>
  ),
  link: (
    <>
      <path d="M8.6 11.4l2.8-2.8" />
      <path d="M7.4 8.8L5.6 10.6a2.9 2.9 0 0 0 4.1 4.1l1.8-1.8" />
      <path d="M12.6 11.2l1.8-1.8a2.9 2.9 0 0 0-4.1-4.1L8.5 7.1" />
    </>
  ),
  undo: (
    <>
      <path d="M6 8h6.5a3.8 3.8 0 0 1 0 7.6H9" />
      <polyline points="8.5 5 5.5 8 8.5 11" />
    </>
  ),
  redo: (
    <>
      <path d="M14 8H7.5a3.8 3.8 0 0 0 0 7.6H11" />
      <polyline points="11.5 5 14.5 8 11.5 11" />
    </>
  ),
  plus: <path d="M10 4v12M4 10h12" />,
  search: (
    <>
      <circle cx="8.5" cy="8.5" r="5" />
      <path d="M12.2 12.2L17 17" />
    </>
  ),
  trash: (
    <>
      <path d="M3.5 5.5h13M8 5.5V3.8h4v1.7" />
      <path d="M5 5.5l.8 11h8.4l.8-11" />
    </>
  ),
  pencil: (
    <>
      <path d="M4 16l.7-3.3L13.3 4a1.6 1.6 0 0 1 2.3 0l.4.4a1.6 1.6 0 0 1 0 2.3L7.3 15.3z" />
    </>
  ),
  back: (
    <>
      <path d="M16 10H4.5" />
      <polyline points="9 5.5 4.5 10 9 14.5" />
    </>
  ),
  doc: (
    <>
      <path d="M5 2.5h6.5L15.5 6.5V17.5H5z" />
      <path d="M11.5 2.5v4h4M7.5 10h5.5M7.5 13h5.5" />
    </>
  ),
  check: <polyline points="4.5 10.5 8.2 14 15.5 6" />,
  cloudOff: (
    <>
      <path d="M6 15.5h8.3a3.3 3.3 0 0 0 .6-6.5 4.8 4.8 0 0 0-8.8-1.3A3.9 3.9 0 0 0 6 15.5z" />
      <path d="M3 3l14 14" />
    </>
  ),
  warning: (
    <>
      <path d="M10 3L2.5 16.5h15z" />
      <path d="M10 8v4M10 14.2v.3" />
    </>
  ),
  close: <path d="M5 5l10 10M15 5L5 15" />,
};

export type IconName = keyof typeof paths;

export function Icon({ name, className }: { name: IconName; className?: string }) {
  return (
    <svg
      className={className ? `icon ${className}` : 'icon'}
      viewBox="0 0 20 20"
      width="20"
      height="20"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.7"
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {paths[name]}
    </svg>
  );
}

export function Spinner() {
  return (
    <svg className="icon spinner" viewBox="0 0 20 20" width="20" height="20" aria-hidden="true" focusable="false">
      <circle cx="10" cy="10" r="6.5" fill="none" stroke="currentColor" strokeWidth="2" opacity="0.25" />
      <path d="M10 3.5a6.5 6.5 0 0 1 6.5 6.5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
    </svg>
  );
}
