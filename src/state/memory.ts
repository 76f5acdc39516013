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

/** The key's entry object, its Map slot, the key string's header and the value's Uint8Array/ArrayBuffer objects. */
export const KEY_OVERHEAD_BYTES = 320;
/** A slot in the ring buffer and the item's Uint8Array. */
export const LIST_ITEM_OVERHEAD_BYTES = 96;
/** A Map entry, the field string's header and the value's Uint8Array. */
export const HASH_FIELD_OVERHEAD_BYTES = 160;
