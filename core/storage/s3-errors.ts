// Turns what the AWS SDK throws into a sentence a user can act on: the HTTP status when the server sent no message,
// the variables to set when credentials are missing or refused, the timeout settings when the endpoint is silent.
import { StorageError } from '../errors.ts';

/** What to set when S3 cannot authenticate us. */
export const S3_CREDENTIALS_HINT =
  'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), AWS_REGION, and S3_ENDPOINT for an S3-compatible server';

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

const HTTP_REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The bucket of an s3:// URI as a URI (`s3://bucket`), the level at which credentials fail. */
function bucketUri(uri: string): string {
  const m = /^s3:\/\/([^/]+)/.exec(uri);
  return m ? `s3://${m[1]}` : uri;
}

/**
 * A StorageError for a failed S3 request. `what` names the operation (`head`, `read`, …), `endpoint` the server
 * asked (for messages only). The SDK's own error stays as the cause.
 */
export function describeS3Failure(err: unknown, what: string, uri: string, endpoint: string): StorageError {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const attempts = e.$metadata?.attempts;
  const tries = attempts && attempts > 1 ? ` (${attempts} attempts)` : '';
  const message = (e.message ?? '')
    .replace(/^@smithy\/node-http-handler - /, '')
    .replace(/ \(configured by client requestHandler\)/, '');
  if (e.name === 'CredentialsProviderError' || /could not load credentials/i.test(message))
    return new StorageError(bucketUri(uri), `no S3 credentials found: ${S3_CREDENTIALS_HINT}`, {
      cause: err,
    });
  if (status === 401 || status === 403) {
    const code = e.name && !/^(Unknown|Forbidden|\d+)$/.test(e.name) ? `, ${e.name}` : '';
    return new StorageError(
      bucketUri(uri),
      `S3 at ${endpoint} refused the request (HTTP ${status} ${HTTP_REASONS[status]}${code}): check the credentials and their access to this bucket; ${S3_CREDENTIALS_HINT}`,
      { cause: err },
    );
  }
  if (e.name === 'TimeoutError')
    return new StorageError(
      uri,
      `${what} failed: no answer from S3 at ${endpoint}${tries}: ${message} Check S3_ENDPOINT; S3_CONNECT_TIMEOUT_MS and S3_RESPONSE_TIMEOUT_MS set the limits, AWS_MAX_ATTEMPTS the attempts.`,
      { cause: err },
    );
  if (e.code === 'ECONNREFUSED' || e.name === 'ECONNREFUSED' || /ECONNREFUSED/.test(message))
    return new StorageError(
      uri,
      `${what} failed: cannot connect to S3 at ${endpoint} (connection refused)${tries}; check S3_ENDPOINT`,
      { cause: err },
    );
  // The SDK says "UnknownError" (or nothing) when the server answered an error status with an empty body.
  const bare = !message || message === 'UnknownError' || message === e.name;
  const statusText = status ? `HTTP ${status}${HTTP_REASONS[status] ? ` ${HTTP_REASONS[status]}` : ''}` : '';
  const detail = bare
    ? statusText || e.name || 'unknown error'
    : `${message}${statusText ? ` (${statusText})` : ''}`;
  return new StorageError(uri, `${what} failed: ${detail}${tries}`, { cause: err });
}
