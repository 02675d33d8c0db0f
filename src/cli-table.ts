/**
 * Values as cells of the command line's aligned tables: one line each, NULL told apart from the
 * text 'NULL', control characters escaped, widths in terminal columns. Pure: no I/O.
 */
import { realText } from './cli-json.ts';
import type { SqlValue } from './index.ts';

/** Table cells wider than this many columns are cut (with …); --json has every byte. */
export const MAX_WIDTH = 200;

/** A column name in a table header: escaped like a cell, never quoted. */
export function headerCell(name: string): string {
  return cut(escapeControls(name));
}

/**
 * A value as one line of a table cell: NULL as `NULL`; text as it is, unless it could be read as
 * NULL, a blob or quoted text, then SQL-quoted; reals with a fraction or exponent (`42.0`, `Inf`);
 * blobs in hex; control characters escaped; values wider than 200 columns cut.
 */
export function tableCell(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) return hexBlob(value);
  if (typeof value === 'number') return realText(value, 'Inf');
  if (typeof value === 'bigint') return value.toString();
  const ambiguous = /^null$/i.test(value) || value.startsWith("'") || /^x'/i.test(value);
  return cut(escapeControls(ambiguous ? `'${value.replaceAll("'", "''")}'` : value));
}

/** Control, line-separator and bidirectional characters as escapes (`\n`, `\x1b`, `\u202e`): what a terminal would act on. */
export function escapeControls(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (char) => CONTROL[char] ?? (char.charCodeAt(0) <= 0xff ? `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\u${char.charCodeAt(0).toString(16)}`),
  );
}

const CONTROL: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` cut to at most MAX_WIDTH display columns, at a character boundary, ending in … when cut. */
function cut(text: string): string {
  if (text.length <= MAX_WIDTH && displayWidth(text) <= MAX_WIDTH) return text;
  if (NARROW.test(text)) return `${text.slice(0, MAX_WIDTH - 1)}…`;
  let width = 0;
  let result = '';
  for (const unit of units(text)) {
    const w = unitWidth(unit);
    if (width + w > MAX_WIDTH - 1) break;
    width += w;
    result += unit;
  }
  return `${result}…`;
}

/** `cell` padded with spaces to `width` display columns (see {@link displayWidth}). */
export function padCell(cell: string, width: number): string {
  return cell + ' '.repeat(Math.max(0, width - displayWidth(cell)));
}

// East Asian Wide and Fullwidth ranges outside emoji (Unicode 15: Hangul Jamo, CJK, Kana, Hangul,
// fullwidth forms, Tangut/Kana supplements, CJK extensions); emoji are matched by their property.
const WIDE = [
  0x1100, 0x115f, 0x2329, 0x232a, 0x2e80, 0x303e, 0x3041, 0x3247, 0x3250, 0x4dbf, 0x4e00, 0xa4c6, 0xa960, 0xa97c, 0xac00, 0xd7a3, 0xf900, 0xfaff,
  0xfe10, 0xfe19, 0xfe30, 0xfe6b, 0xff01, 0xff60, 0xffe0, 0xffe6, 0x16fe0, 0x1b2fb, 0x1f200, 0x1f2ff, 0x20000, 0x3fffd,
];
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}/u;
const EMOJI = /\p{Emoji}/u;
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}\u1160-\u11ff]/u;

function codePointWidth(char: string): number {
  const code = char.codePointAt(0)!;
  if (code < 0x300) return 1;
  for (let i = 0; i < WIDE.length; i += 2) {
    if (code < WIDE[i]!) break;
    if (code <= WIDE[i + 1]!) return 2;
  }
  if (EMOJI_PRESENTATION.test(char)) return 2;
  return ZERO_WIDTH.test(char) ? 0 : 1;
}

/** The columns a character or grapheme cluster takes in a terminal: its widest character; an emoji with VS16 (U+FE0F) takes two. */
function unitWidth(unit: string): number {
  if (unit.length === 1 || (unit.length === 2 && unit.codePointAt(0)! > 0xffff)) return codePointWidth(unit);
  let width = 0;
  for (const char of unit) width = Math.max(width, codePointWidth(char));
  if (width < 2 && unit.includes('\ufe0f') && EMOJI.test(unit)) return 2;
  return width;
}

/** Text of one-column characters only (ASCII, Latin-1, Latin Extended, …): its width is its length. */
const NARROW = /^[\x20-\x7e\u00a0-\u02ff\u2026]*$/;
/** Characters that join with their neighbours into one cluster (ZWJ, VS16, flags, skin tones). */
const JOINING = /[\u200d\ufe0f\u{1f1e6}-\u{1f1ff}\u{1f3fb}-\u{1f3ff}]/u;
const segmenter = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : undefined;

/** The units of `text` whose widths add up: grapheme clusters where characters join, else characters. */
function* units(text: string): Generator<string> {
  if (segmenter === undefined || !JOINING.test(text)) {
    yield* text;
    return;
  }
  for (const { segment } of segmenter.segment(text)) yield segment;
}

/**
 * The columns `text` takes in a terminal: East Asian Wide and Fullwidth characters and emoji
 * take 2, combining marks and other zero-width characters 0, everything else 1 (an emoji
 * sequence joined by ZWJ, a flag, an emoji with a skin tone or VS16 counts once).
 */
export function displayWidth(text: string): number {
  if (NARROW.test(text)) return text.length;
  let width = 0;
  for (const unit of units(text)) width += unitWidth(unit);
  return width;
}

function hexBlob(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 32), (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `x'${shown}${bytes.length > 32 ? '…' : ''}'`;
}
