/**
 * The memory model the budget and LRU eviction work with: an estimate in
 * bytes that depends only on content, so every replica computes the same
 * figure and apply can refuse a write deterministically. It is not the V8
 * heap; the constants approximate V8's per-object costs as measured by
 * `npm run bench -- state` (see test/bench/state.ts), so that the budget
 * tracks the process's real growth to within tens of percent.
 *
 *   key    = UTF-8 bytes of the key + KEY_OVERHEAD_BYTES + value
 *   string = its bytes
 *   list   = sum over items of (item bytes + LIST_ITEM_OVERHEAD_BYTES)
 *   hash   = sum over fields of (UTF-8 bytes of field + value bytes + HASH_FIELD_OVERHEAD_BYTES)
 *
 * Sessions are not counted: their number is capped by config instead.
 */

// Calibrated with Node 20 on x64 (`npm run bench -- state`, V8 heap + ArrayBuffer
// growth per item): a string key with a 100-byte value took ~510 bytes, a
// 16-byte list item ~42, a hash field of 9 + 16 bytes ~127.

/** The key's entry object, its Map slot, the key string, the value's Uint8Array and buffer objects. */
export const KEY_OVERHEAD_BYTES = 400;
/** A ring-buffer slot and the item's arena slot rounding (arena.ts). */
export const LIST_ITEM_OVERHEAD_BYTES = 24;
/** A Map entry, the field string's header, the entry's slots in HashValue's arrays (hash-value.ts) and arena rounding. */
export const HASH_FIELD_OVERHEAD_BYTES = 96;
