// The SDK's SLS gateway, adjusted in two places (part of the SLS adapter: nothing outside ingest/sources/sls*.ts sees it):
// - an endpoint that is an IP literal or localhost is used as the host as is (the stock gateway prefixes the project,
//   `<project>.<endpoint>`, which cannot resolve for 127.0.0.1: the project's local test server, or a private proxy);
// - an error answer whose body is not the SLS JSON error shape (a proxy's HTML 502, an empty 503) still becomes a
//   typed error carrying the HTTP status, instead of a JSON parse error that says nothing about retrying.
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import GatewayModule from '@alicloud/gateway-sls';

/** The class a CommonJS module exports as `default`, whether the loader hands over `module.exports` (Node) or the default itself (vite). */
export function cjsDefault<T>(module: { default: T }): T {
  const inner = (module as { default?: T }).default;
  return (inner ?? module) as T;
}

const Gateway = cjsDefault(GatewayModule);
type InterceptorContext = Parameters<InstanceType<typeof Gateway>['modifyResponse']>[0];
type AttributeMap = Parameters<InstanceType<typeof Gateway>['modifyResponse']>[1];

/** An error answer from the service (or a proxy in front of it): HTTP status, SLS error code, request ID. */
export class SlsServiceError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly requestId: string | null;
  constructor(code: string, message: string, statusCode: number, requestId: string | null) {
    super(`${code}: ${message}`);
    this.name = 'SlsServiceError';
    this.code = code;
    this.statusCode = statusCode;
    this.requestId = requestId;
  }
}

/** `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`: hosts that cannot take a project prefix. */
export function isLiteralEndpoint(endpoint: string): boolean {
  const host = endpoint.startsWith('[') ? endpoint.slice(1, endpoint.indexOf(']')) : endpoint.replace(/:\d+$/, '');
  return host === 'localhost' || isIP(host) !== 0;
}

async function readAll(body: Readable | undefined): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export class KeyfenceSlsGateway extends Gateway {
  override async getHost(network: string, project: string, endpoint: string): Promise<string> {
    if (isLiteralEndpoint(endpoint)) return endpoint;
    return super.getHost(network, project, endpoint);
  }

  override async modifyResponse(context: InterceptorContext, attributeMap: AttributeMap): Promise<void> {
    const response = context.response;
    const status = response?.statusCode ?? 0;
    if (status >= 400) {
      const text = (await readAll(response!.body)).toString('utf8');
      const requestId = response!.headers?.['x-log-requestid'] ?? null;
      let code = `HTTP${status}`;
      let message = text.slice(0, 200) || `HTTP status ${status}`;
      try {
        const parsed = JSON.parse(text) as { errorCode?: unknown; errorMessage?: unknown };
        if (typeof parsed.errorCode === 'string' && parsed.errorCode) code = parsed.errorCode;
        if (typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
      } catch {
        // not the SLS error shape: keep the status as the code
      }
      throw new SlsServiceError(code, message, status, requestId);
    }
    await super.modifyResponse(context, attributeMap);
  }
}
