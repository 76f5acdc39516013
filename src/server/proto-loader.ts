// Moved to src/proto/loader.ts (shared by client and server); this re-export keeps work in flight compiling until it is updated.
export * from '../proto/loader.ts';
