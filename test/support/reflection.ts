/**
 * A gRPC server-reflection client for tests: what grpcurl asks a node first.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface ReflectionAnswer {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

const require = createRequire(import.meta.url);

/** Sends `requests` on one ServerReflectionInfo stream and returns every answer, once the server ends it. */
export async function askReflection(
  address: string,
  credentials: grpc.ChannelCredentials,
  requests: readonly object[],
  version: 'v1' | 'v1alpha' = 'v1',
): Promise<ReflectionAnswer[]> {
  const protoDir = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto');
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [protoDir], keepCase: true, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } };
  const Client = pkg.grpc.reflection[version]?.ServerReflection;
  if (Client === undefined) throw new Error(`no reflection ${version}`);
  const client = new Client(address, credentials);
  try {
    const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionAnswer> }).ServerReflectionInfo();
    const answers: ReflectionAnswer[] = [];
    call.on('data', (answer: ReflectionAnswer) => answers.push(answer));
    const done = new Promise((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (const request of requests) call.write(request);
    call.end();
    await done;
    return answers;
  } finally {
    client.close();
  }
}

/** The service names a server lists through reflection. */
export async function listServices(address: string, credentials: grpc.ChannelCredentials): Promise<string[]> {
  const [answer] = await askReflection(address, credentials, [{ list_services: '' }]);
  return (answer?.list_services_response?.service ?? []).map((service) => service.name);
}
