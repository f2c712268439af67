// The test run's namespace on NATS: the server creates the stream and the media object
// store; the run deletes both.

import { connect } from 'nats';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** The JetStream stream of a Framecart namespace: `<NAMESPACE>_EVENTS`. */
export function streamName(namespace) {
  return `${namespace.toUpperCase()}_EVENTS`;
}

/** The stream behind the namespace's media object store: `OBJ_<NAMESPACE>_MEDIA`. */
export function mediaStreamName(namespace) {
  return `OBJ_${namespace.toUpperCase()}_MEDIA`;
}

/** Deletes the namespace's stream (and with it its consumers) and its media object
 * store; absent is fine. */
export async function deleteStream(namespace) {
  const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, ''), timeout: 10_000 });
  try {
    const jsm = await nc.jetstreamManager();
    for (const name of [streamName(namespace), mediaStreamName(namespace)]) {
      await jsm.streams.delete(name).catch((error) => {
        if (!/not found/i.test(String(error?.message))) throw error;
      });
    }
  } finally {
    await nc.close();
  }
}
