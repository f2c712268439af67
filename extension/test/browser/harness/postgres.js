// A Postgres database of the test run's own, made and dropped with psql.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The server to create databases on: PG_ADMIN_URL, or the local one the project uses. */
export const ADMIN_URL = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function psql(sql) {
  await run('psql', [ADMIN_URL, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeout: 60_000 });
}

/** Creates database `name` (a plain lower-case identifier) and returns its URL. */
export async function createDatabase(name) {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a safe database name: ${name}`);
  await psql(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops database `name`, closing whatever connections remain. */
export async function dropDatabase(name) {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a safe database name: ${name}`);
  await psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
