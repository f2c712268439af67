// A stand-in server that records what the extension sends and answers as told: for
// what the real server cannot be made to do on cue (a 503, a 422, a matched click,
// which needs a processed video, an order that runs out of stock) or does not check
// (the token). It follows the server's API contract:
//
//   POST /api/v1/clicks                   202 {click_id, video_id}
//   GET  /api/v1/clicks/{id}/match        200 {click_id, status, article, …}; 404 for an unknown click
//   GET  /api/v1/products/{article}       200 the product; 404 when unknown
//   POST /api/v1/orders                   201 the order; replays the first answer for a known Idempotency-Key
//   POST /api/v1/sessions                 200 {token, user_id, roles, expires_at}; 401 for a wrong password
//   GET  /images/{name}.png               a small picture

import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { deflateSync } from 'node:zlib';

export async function startRecorder() {
  const recorder = {
    /** The clicks posted: {headers, click}. */
    requests: [],
    /** Statuses for the next click POSTs, in order; 202 once they are used up. */
    answers: [],
    /**
     * The verdict on a click: (click, asked) → {status, article?, additional_identifier?},
     * `asked` counting the questions about this click so far (0 for the first).
     */
    verdict: () => ({ status: 'pending' }),
    /** The questions about matches: {clickId, status (the verdict answered)}. */
    matchRequests: [],
    /** The catalogue, by article. */
    products: new Map(),
    productRequests: [],
    /** The orders posted: {headers, body}. */
    orders: [],
    /** Answers for the next order POSTs, in order ({status, body}); 201 once used up. */
    orderAnswers: [],
    /** Sign-ins: {email, password} that work, and the token they give. */
    accounts: new Map(),
    sessions: [],
  };
  // What each Idempotency-Key was answered, as the server keeps it.
  const byKey = new Map();
  const asked = new Map();

  const server = createServer(async (request, response) => {
    let text = '';
    for await (const chunk of request) text += chunk;
    const url = new URL(request.url, 'http://stand-in');
    const path = url.pathname;
    const reply = (status, body, headers = {}) => {
      response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      response.end(JSON.stringify(body));
    };
    const refuse = (status, code, message = `answered ${status} on purpose`) =>
      reply(status, { error: { code, message } });

    if (request.method === 'POST' && path === '/api/v1/clicks') {
      const click = JSON.parse(text);
      recorder.requests.push({ headers: request.headers, click });
      const status = recorder.answers.shift() ?? 202;
      if (status === 202) return reply(202, { click_id: click.clickId, video_id: click.videoId });
      return refuse(status, `test_${status}`);
    }

    let match = /^\/api\/v1\/clicks\/([^/]+)\/match$/.exec(path);
    if (request.method === 'GET' && match) {
      const clickId = decodeURIComponent(match[1]);
      const click = recorder.requests.find((r) => r.click.clickId === clickId)?.click;
      if (!click) {
        recorder.matchRequests.push({ clickId, status: 404 });
        return refuse(404, 'not_found', `no click ${clickId}`);
      }
      const n = asked.get(clickId) ?? 0;
      asked.set(clickId, n + 1);
      const verdict = recorder.verdict(click, n);
      recorder.matchRequests.push({ clickId, status: verdict.status });
      return reply(200, {
        click_id: clickId,
        video_id: click.videoId,
        status: verdict.status,
        article: verdict.article ?? null,
        additional_identifier: verdict.additional_identifier ?? null,
        label: verdict.status === 'matched' ? 'object' : null,
        track_id: verdict.status === 'matched' ? 'track-1' : null,
        reason: verdict.status === 'unmatched' ? 'no_object_near' : null,
        explanation: `stand-in verdict: ${verdict.status}`,
        candidates: [],
      });
    }

    match = /^\/api\/v1\/products\/([^/]+)$/.exec(path);
    if (request.method === 'GET' && match) {
      const article = decodeURIComponent(match[1]);
      recorder.productRequests.push(article);
      const product = recorder.products.get(article);
      return product ? reply(200, product) : refuse(404, 'not_found', `no product ${article}`);
    }

    if (request.method === 'POST' && path === '/api/v1/orders') {
      const body = JSON.parse(text);
      recorder.orders.push({ headers: request.headers, body });
      const key = request.headers['idempotency-key'];
      if (!key) return refuse(400, 'missing_idempotency_key', 'an Idempotency-Key header is required');
      if (byKey.has(key)) {
        const first = byKey.get(key);
        return reply(first.status, first.body);
      }
      const planned = recorder.orderAnswers.shift();
      const answer = planned ?? { status: 201, body: orderOf(body, recorder.products) };
      // Like the server: a definite answer is kept for the key; momentary trouble is not.
      if (answer.status < 500) byKey.set(key, answer);
      return reply(answer.status, answer.body);
    }

    if (request.method === 'POST' && path === '/api/v1/sessions') {
      const { email, password } = JSON.parse(text);
      recorder.sessions.push({ email });
      const account = recorder.accounts.get(email);
      if (!account || account.password !== password) return refuse(401, 'unauthenticated', 'wrong email or password');
      return reply(200, {
        token: account.token,
        user_id: randomUUID(),
        roles: ['viewer'],
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      });
    }

    if (request.method === 'GET' && /^\/images\/[\w-]+\.png$/.test(path)) {
      response.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-store' });
      response.end(PICTURE);
      return;
    }

    reply(path === '/healthz' ? 200 : 404, {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  recorder.url = `http://127.0.0.1:${server.address().port}`;
  recorder.close = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
  return recorder;
}

/** The order the server would make of `body`: one per line, priced from the catalogue. */
function orderOf(body, products) {
  const lines = body.lines.map(({ article, quantity }) => {
    const product = products.get(article);
    return {
      article,
      name: product?.name ?? article,
      quantity,
      unit_price_minor: product?.price_minor ?? 0,
      line_total_minor: (product?.price_minor ?? 0) * quantity,
    };
  });
  return {
    id: randomUUID(),
    status: 'awaiting_payment',
    lines,
    total_minor: lines.reduce((sum, line) => sum + line.line_total_minor, 0),
    currency: products.get(body.lines[0]?.article)?.currency ?? 'EUR',
    click_id: body.click_id,
    created_at: new Date().toISOString(),
  };
}

/** A 48×32 PNG, magenta: a picture that really decodes. */
const PICTURE = (() => {
  const width = 48;
  const height = 32;
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(width).fill([0xc2, 0x18, 0x5b]).flat())]);
  const pixels = deflateSync(Buffer.concat(Array(height).fill(row)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', pixels),
    chunk('IEND', Buffer.alloc(0)),
  ]);
})();
