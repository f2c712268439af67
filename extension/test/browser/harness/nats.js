// The test run's namespace on NATS: the server creates the stream; the run deletes it.

import { connect } from 'nats';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** The JetStream stream of a Framecart namespace: `<NAMESPACE>_EVENTS`. */
export function streamName(namespace) {
  return `${namespace.toUpperCase()}_EVENTS`;
}

/** Deletes the namespace's stream (and with it its consumers); absent is fine. */
export async function deleteStream(namespace) {
  const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, ''), timeout: 10_000 });
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(streamName(namespace)).catch((error) => {
      if (!/not found/i.test(String(error?.message))) throw error;
    });
  } finally {
    await nc.close();
  }
}
