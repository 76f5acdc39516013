/**
 * grpc-js sets the TLS server name (SNI) to the host it dials, IP addresses
 * included, and Node warns about that once per process (DEP0123). Dialing
 * members by IP is normal here (node certificates carry IP SANs), so the CLIs
 * drop that one warning; every other warning still prints.
 */
export function silenceIpServerNameWarning(): void {
  const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, typeOrOptions, code] = args;
    const warningCode = typeof typeOrOptions === 'object' && typeOrOptions !== null ? (typeOrOptions as { code?: unknown }).code : code;
    if (warningCode === 'DEP0123') return;
    emitWarning(...args);
  }) as typeof process.emitWarning;
}
