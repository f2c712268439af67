// Asking the server what a click matched: when to ask again, and what an answer means.
// Pure (node tests it); the service worker does the asking (src/background/matches.js).
//
// A verdict usually comes a second or two after the click was accepted: the click must
// reach the server's views (404 until then) and the matcher must run (`pending` until
// then, and for good while the video has no detections). So the worker asks soon, then
// less and less often, and gives up after a bounded time: a card that comes late, beside
// a moment of the video long gone, would be more confusing than none.

export const MATCH_POLL = Object.freeze({
  /** The first question, this long after the click was accepted. */
  firstMs: 300,
  /** Each wait is this many times the one before… */
  factor: 1.6,
  /** …up to this long. */
  maxMs: 2_000,
  /** No question is asked later than this after the first wait began. */
  budgetMs: 10_000,
  /** A click accepted this long after it was made (it waited offline) is not looked up. */
  maxClickAgeMs: 120_000,
});

/**
 * How long to wait before question number `asked + 1`, or null when the polling is over.
 * @param {number} asked  questions asked so far (0 before the first)
 * @param {number} elapsedMs  time since the polling began
 */
export function nextPollDelay(asked, elapsedMs, policy = MATCH_POLL) {
  const n = Math.max(0, Math.floor(asked));
  const delay = Math.round(Math.min(policy.maxMs, policy.firstMs * policy.factor ** Math.min(n, 50)));
  return elapsedMs + delay > policy.budgetMs ? null : delay;
}

/** The waits of a whole polling that never gets a verdict (for tests and docs). */
export function pollSchedule(policy = MATCH_POLL) {
  const delays = [];
  let elapsed = 0;
  for (let delay; (delay = nextPollDelay(delays.length, elapsed, policy)) !== null; ) {
    delays.push(delay);
    elapsed += delay;
  }
  return delays;
}

const ARTICLE = /^[A-Za-z0-9_-]{1,100}$/;

/** True when `article` can be an article number (letters, digits, `-`, `_`). */
export function isArticle(article) {
  return typeof article === 'string' && ARTICLE.test(article);
}

/**
 * What an answer to `GET /api/v1/clicks/{clickId}/match` means:
 * - `matched` (with the article and its additional identifier): show the product;
 * - `wait`: no verdict yet (pending, the click not in the views yet, or the server in
 *   momentary trouble), ask again while the budget lasts;
 * - `done`: no product for this click (unmatched), or nothing sensible to wait for.
 * @param {{status: number, body?: any}} answer
 * @param {string} clickId  the click asked about
 */
export function matchStep(answer, clickId) {
  const { status, body } = answer ?? {};
  if (status === 200) {
    if (!body || typeof body !== 'object') return { step: 'done' };
    if (typeof body.click_id === 'string' && body.click_id.toLowerCase() !== String(clickId).toLowerCase()) {
      return { step: 'done' };
    }
    if (body.status === 'pending') return { step: 'wait' };
    if (body.status === 'matched' && isArticle(body.article)) {
      const extra = body.additional_identifier;
      return {
        step: 'matched',
        article: body.article,
        additionalIdentifier: typeof extra === 'string' && extra.trim() ? extra.trim().slice(0, 100) : null,
      };
    }
    return { step: 'done' }; // unmatched, or a verdict this extension does not know
  }
  // 404: the views have not caught up with the click yet. No answer, 408, 425, 429,
  // 5xx: momentary. Anything else (400, 401, 403, …) will not change by waiting.
  if (!status || status === 404 || status === 408 || status === 425 || status === 429 || status >= 500) {
    return { step: 'wait' };
  }
  return { step: 'done' };
}

/**
 * True when a click that the server has just accepted is worth looking up: it came from
 * a tab (which can show the card), and not so long ago that the moment is gone.
 * @param {{tab: object | null, queuedAt: number}} entry  the outbox entry
 */
export function worthWatching(entry, now, policy = MATCH_POLL) {
  return !!entry?.tab && Number.isFinite(entry.queuedAt) && now - entry.queuedAt <= policy.maxClickAgeMs;
}
