/**
 * Structured JSON logs (pino) to stdout. Tokens never reach a log line: `access_token` query
 * values are cut from every URL we log (`redactUrl`), and pino's redaction blanks the usual
 * places a credential could hide (Authorization headers, token fields) should one slip in.
 * Message bodies are not logged either, only their sizes and types.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'progress-tracker' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'authorization',
          'headers.authorization',
          'req.headers.authorization',
          'token',
          'accessToken',
          'access_token',
          '*.token',
          '*.access_token',
          'secret',
          '*.secret',
          'jwtSecret',
          '*.jwtSecret',
        ],
        censor: '[REDACTED]',
      },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

const TOKEN_IN_QUERY = /([?&](?:access_token|token)=)[^&#]*/gi;

/** The URL with any access_token value replaced, safe to log. */
export function redactUrl(url: string): string {
  return url.replace(TOKEN_IN_QUERY, '$1[REDACTED]');
}
