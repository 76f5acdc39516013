/**
 * Flags for node itself when we start `quorumkv serve` processes (`quorumkv
 * dev`, the benchmark); deploy/Dockerfile sets the same in NODE_OPTIONS.
 *
 * A bigger young generation: under load every request's gRPC objects outlive
 * V8's default 16 MiB semi-space, so scavenges copied them; 64 MiB cut the
 * leader's CPU per put by about 15 % at 256 puts in flight, for up to about
 * 100 MiB more memory under load.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
