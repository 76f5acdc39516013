/**
 * One gRPC call to one endpoint, through the loaded service definitions
 * (so requests and answers use the real .proto encoding), with a deadline
 * and cancellation by AbortSignal.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos, type ClusterMethod, type KvMethod } from '../proto/loader.ts';

type Method = grpc.MethodDefinition<unknown, unknown>;

export function kvMethod(name: KvMethod): Method {
  return loadProtos().kv[name] as Method;
}

export function clusterMethod(name: ClusterMethod): Method {
  return loadProtos().cluster[name] as Method;
}

/** A unary call; rejects with the grpc-js ServiceError (or CANCELLED when the signal fires). */
export function unary<Res>(client: grpc.Client, method: Method, request: object, deadline: number, signal?: AbortSignal): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      new grpc.Metadata(),
      { deadline },
      (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (error !== null) reject(error);
        else resolve(response as Res);
      },
    );
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A server-streaming call; the caller reads it and cancels it. No deadline: streams live as long as they are read. */
export function serverStream(client: grpc.Client, method: Method, request: object): grpc.ClientReadableStream<unknown> {
  return client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), {});
}
