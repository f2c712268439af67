// A stand-in server that records what the extension sends and answers as told: for
// what the real server cannot be made to do on cue (a 503, a 422) or does not check
// (the token).

import { once } from 'node:events';
import { createServer } from 'node:http';

export async function startRecorder() {
  const recorder = {
    requests: [],
    /** Statuses for the next POSTs, in order; 202 once they are used up. */
    answers: [],
  };
  const server = createServer(async (request, response) => {
    let body = '';
    for await (const chunk of request) body += chunk;
    if (request.method === 'POST' && request.url === '/api/v1/clicks') {
      const click = JSON.parse(body);
      recorder.requests.push({ headers: request.headers, click });
      const status = recorder.answers.shift() ?? 202;
      const answer =
        status === 202
          ? { click_id: click.clickId, video_id: click.videoId }
          : { error: { code: `test_${status}`, message: `answered ${status} on purpose` } };
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(answer));
      return;
    }
    response.writeHead(request.url === '/healthz' ? 200 : 404, { 'Content-Type': 'application/json' });
    response.end('{}');
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
