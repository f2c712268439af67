// The popup: is the server reachable, how many clicks wait, what went wrong last.
// The service worker answers; the popup only shows.

const $ = (id) => document.getElementById(id);

function show(id, text, tone = '') {
  $(id).textContent = text;
  $(id).className = tone;
}

/** "12 s ago", "in 3 min": a time relative to now, coarse enough to read at a glance. */
function relative(at, now = Date.now()) {
  const seconds = Math.round((at - now) / 1000);
  const abs = Math.abs(seconds);
  const amount = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : `${Math.round(abs / 3600)} h`;
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

async function refresh() {
  const status = await chrome.runtime.sendMessage({ type: 'framecart:status' });
  if (!status?.ok) throw new Error(status?.error ?? 'no answer from the extension');
  show('server', status.serverUrl);
  if (status.reachable) {
    show('reachable', 'yes', 'ok');
  } else {
    show('reachable', `no (${status.healthError ?? `HTTP ${status.healthStatus}`})`, 'bad');
  }
  const next = status.waiting && status.nextAttemptAt ? `, next try ${relative(status.nextAttemptAt)}` : '';
  show('waiting', `${status.waiting} click${status.waiting === 1 ? '' : 's'}${next}`);
  show('last-sent', status.lastSentAt ? relative(status.lastSentAt) : 'none yet');
  if (status.lastError) {
    show('last-error', `${status.lastError.message} (${relative(status.lastError.at)})`, 'bad');
  } else {
    show('last-error', 'none');
  }
}

function failed(error) {
  show('reachable', `unknown (${error.message})`, 'bad');
}

$('send-now').addEventListener('click', async () => {
  $('send-now').disabled = true;
  try {
    await chrome.runtime.sendMessage({ type: 'framecart:flush' });
    await refresh();
  } catch (error) {
    failed(error);
  } finally {
    $('send-now').disabled = false;
  }
});
$('settings').addEventListener('click', () => chrome.runtime.openOptionsPage());

refresh().catch(failed);
