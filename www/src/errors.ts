import type { ErrorCode } from './types.js';

/** Every error the library reports: an `Error` with a stable `code`. */
export class ShelfwiseError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = code === 'ABORTED' ? 'AbortError' : 'ShelfwiseError';
    this.code = code;
  }
}

/** The serialisable form that crosses the worker boundary (custom properties of Errors do not). */
export interface WireError {
  code: ErrorCode;
  message: string;
}

export function toWire(e: unknown): WireError {
  if (e && typeof e === 'object') {
    const code = (e as { code?: unknown }).code;
    const message = String((e as { message?: unknown }).message ?? e);
    if (typeof code === 'string') return { code: code as ErrorCode, message };
    if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
      return { code: 'INTERNAL', message: `wasm trap: ${message}` };
    }
    return { code: 'INTERNAL', message };
  }
  return { code: 'INTERNAL', message: String(e) };
}

export function fromWire(w: WireError): ShelfwiseError {
  return new ShelfwiseError(w.code, w.message);
}

export function aborted(what = 'request'): ShelfwiseError {
  return new ShelfwiseError('ABORTED', `${what} was aborted or superseded by a newer one`);
}
