// The sandbox's errors: `code` is what the page gets in an `error` reply (machine-readable), the
// message what a person reads.

export class SandboxError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
