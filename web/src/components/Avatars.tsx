import { initials } from '../collab/awareness';

export interface AvatarPerson {
  /** The account: one avatar per account. */
  id: string;
  name: string;
  color: string;
  isSelf?: boolean;
}

export function Avatar({ person, size = 'md' }: { person: AvatarPerson; size?: 'sm' | 'md' }) {
  const label = person.isSelf ? `${person.name} (you)` : person.name;
  return (
    <span className={`avatar avatar-${size}`} style={{ backgroundColor: person.color }} title={label} role="img" aria-label={label}>
      {initials(person.name)}
    </span>
  );
}

/** Overlapping avatars, at most `max` and then "+N". */
export function AvatarStack({ people, max = 4, size = 'md', label }: { people: AvatarPerson[]; max?: number; size?: 'sm' | 'md'; label: string }) {
  if (people.length === 0) return null;
  const shown = people.slice(0, max);
  const rest = people.length - shown.length;
  const names = people.map((p) => (p.isSelf ? `${p.name} (you)` : p.name)).join(', ');
  return (
    <div className="avatar-stack" role="group" aria-label={`${label}: ${names}`}>
      {shown.map((p) => (
        <Avatar key={p.id} person={p} size={size} />
      ))}
      {rest > 0 && (
        <span className={`avatar avatar-${size} avatar-more`} title={names}>
          +{rest}
        </span>
      )}
    </div>
  );
}
