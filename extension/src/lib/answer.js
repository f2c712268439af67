// What the server's answer to a click means, in words a person can act on. Pure.
//
// An answer is {status, body?, retryAfter?, error?}: status 0 when no answer came
// (error then says why), body the parsed JSON when there was some.

/** One line for the popup's "last error". */
export function describeFailure(answer, serverUrl) {
  if (!answer.status) {
    return `Cannot reach ${serverUrl}: ${answer.error || 'no answer'}`;
  }
  const detail = errorDetail(answer.body);
  const what =
    answer.status >= 500 ? 'Server error' : answer.status === 429 ? 'Server busy' : 'Refused';
  return `${what} (HTTP ${answer.status}${detail.code ? ` ${detail.code}` : ''})${
    detail.message ? `: ${detail.message}` : ''
  }`;
}

/** The `{"error": {"code", "message"}}` of a Framecart error body, when it is one. */
export function errorDetail(body) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (!error || typeof error !== 'object') return {};
  return {
    code: typeof error.code === 'string' ? error.code : undefined,
    message: typeof error.message === 'string' ? error.message.slice(0, 300) : undefined,
  };
}

/** Why a fetch failed, short: a timeout reads better than "signal is aborted". */
export function networkErrorText(error) {
  if (error?.name === 'TimeoutError' || error?.name === 'AbortError') return 'no answer in time';
  return String(error?.message || error || 'network error');
}
