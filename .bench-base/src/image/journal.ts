/** The first 8 bytes of a rollback journal header while the journal is live. */
const JOURNAL_MAGIC = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7] as const;

/** How many bytes of a journal {@link isJournalActive} needs to look at. */
export const JOURNAL_PROBE_SIZE = JOURNAL_MAGIC.length;

/**
 * Whether a rollback journal that starts with `head` still protects a transaction.
 *
 * A writer makes its journal inactive at commit by deleting it (DELETE), truncating it to zero
 * bytes (TRUNCATE) or zeroing its header (PERSIST); it writes the magic before it touches the
 * database file. So the journal is active exactly when it starts with the magic.
 */
export function isJournalActive(head: Uint8Array): boolean {
  if (head.length < JOURNAL_MAGIC.length) return false;
  for (let i = 0; i < JOURNAL_MAGIC.length; i++) {
    if (head[i] !== JOURNAL_MAGIC[i]) return false;
  }
  return true;
}
