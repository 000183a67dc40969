/**
 * Durations as an operator writes them in HAProxy or Go: `500ms`, `3s`, `30m`, `1h`, and combinations
 * from the largest unit down (`1h30m`, `1m30s`, `2s500ms`). A bare `0` is allowed (no unit needed for
 * nothing). Results are whole milliseconds, capped at what Node's timers can hold.
 */

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
const UNIT_ORDER: readonly Unit[] = ['h', 'm', 's', 'ms'];

/** setTimeout holds at most 2^31−1 ms (about 24.8 days); longer timers fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

const EXAMPLES = 'such as "500ms", "3s", "30m", "1h" or "1m30s"';

/**
 * Parses `text` into milliseconds.
 * Post: ok ⇒ value is an integer in [0, MAX_DURATION_MS]; otherwise `error` says what was expected
 * and what was found.
 */
export function parseDuration(text: string): ParseResult<number> {
  const trimmed = text.trim();
  if (trimmed === '0') return { ok: true, value: 0 };
  if (trimmed === '') return { ok: false, error: `expected a duration ${EXAMPLES}, got an empty string` };
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    return { ok: false, error: `"${text}" has no unit: write "${trimmed}ms" or "${trimmed}s"` };
  }
  let total = 0;
  let position = 0;
  let lastUnitIndex = -1;
  while (position < trimmed.length) {
    PART.lastIndex = position;
    const match = PART.exec(trimmed);
    if (match === null) {
      return { ok: false, error: `expected a duration ${EXAMPLES}, got "${text}"` };
    }
    const unit = match[2] as Unit;
    const unitIndex = UNIT_ORDER.indexOf(unit);
    if (unitIndex <= lastUnitIndex) {
      return { ok: false, error: `"${text}": units must go from the largest down (h, m, s, ms), each at most once` };
    }
    lastUnitIndex = unitIndex;
    total += Number(match[1]) * UNIT_MS[unit];
    position = PART.lastIndex;
  }
  if (!Number.isInteger(total)) {
    return { ok: false, error: `"${text}" is not a whole number of milliseconds` };
  }
  if (total > MAX_DURATION_MS) {
    return { ok: false, error: `"${text}" is too long: at most ${formatDuration(MAX_DURATION_MS)} (about 24 days)` };
  }
  return { ok: true, value: total };
}

/** Formats milliseconds in the same notation, largest unit first: 90000 → "1m30s", 0 → "0". */
export function formatDuration(milliseconds: number): string {
  if (milliseconds === 0) return '0';
  let rest = milliseconds;
  let text = '';
  for (const unit of UNIT_ORDER) {
    const count = Math.floor(rest / UNIT_MS[unit]);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * UNIT_MS[unit];
    }
  }
  return text;
}
