/**
 * TLS passthrough end to end: real TLS clients (`openssl s_client`, `curl`) through an SNI
 * listener to Node TLS servers that each hold their own certificate, signed by a CA made for this
 * file (openssl req/x509 in a temporary directory, removed after). Each client verifies the
 * certificate chain and the host name against that CA and reaches the backend its server name
 * routes to; since l4lb holds no key and no certificate, a verified handshake with the backend's
 * own certificate shows the TLS session is the client's and the backend's, end to end. A name
 * routed to a backend whose certificate does not carry it fails verification, as it must.
 *
 * Needs `openssl` and `curl`: outside CI a missing one skips the block, with CI=true it fails
 * (.ci/run installs both).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListenerConfig } from '../src/config/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { requirement } from './helpers/skip.js';

const TOOLS = ['openssl', 'curl'] as const;
const missingTools = TOOLS.filter((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined);
const needs = requirement('TLS passthrough end to end with openssl s_client and curl', missingTools.length === 0 ? undefined : `${missingTools.join(' and ')} not installed`);

/** The two names with a certificate each, and the routes that reach them. */
const DB = 'db.example.com';
const WEB = 'web.example.org';

/** Runs openssl to its end; throws with its stderr when it fails. */
function openssl(args: string[], cwd: string): void {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${String(result.status)}): ${result.stderr}`);
}

/** A CA and, for each name, a key and a certificate it signed (subjectAltName DNS:NAME, serverAuth). */
function makeCertificates(dir: string, names: readonly string[]): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=l4lb test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  for (const name of names) {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${name}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }
}

/**
 * A TLS server with `name`'s certificate that answers its name: to an HTTP request (curl) with a
 * minimal HTTP/1.1 response whose body is `NAME\n`, to anything else (s_client's line) with
 * `NAME\n`; then it closes.
 */
async function nameServer(dir: string, name: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) }, (socket: TLSSocket) => {
    let received = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('GET ')) {
        if (!received.includes('\r\n\r\n')) return;
        const body = `${name}\n`;
        socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      } else if (received.includes('\n')) {
        socket.end(`${name}\n`);
      }
    });
  });
  server.on('tlsClientError', () => {}); // the failed-verification case ends handshakes early
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the TLS backend has no address');
  return { server, port: address.port };
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a client to its end with `input` on stdin; killed (by its PID) after 20 s should it hang. */
function run(command: string, args: string[], input: string, cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe.skipIf(needs.skip)(needs.title, () => {
  let dir = '';
  let balancer: Balancer | undefined;
  let log: CapturedLog;
  let port = 0;
  const backends: Server[] = [];

  beforeAll(async () => {
    if (missingTools.length > 0) throw new Error(`${missingTools.join(' and ')} not installed (.ci/run installs them)`);
    dir = mkdtempSync(join(tmpdir(), 'l4lb-sni-tls-'));
    makeCertificates(dir, [DB, WEB]);
    const db = await nameServer(dir, DB);
    const web = await nameServer(dir, WEB);
    backends.push(db.server, web.server);
    const services = [proxyService([backend('db1', db.port)], { name: 'db', listen: [] }), proxyService([backend('web1', web.port)], { name: 'web', listen: [] })];
    const listener: ListenerConfig = { listen: { host: '127.0.0.1', port: 0 }, routes: [{ sni: DB, service: 'db' }, { sni: '*.example.org', service: 'web' }, { default: 'db' }], timeouts: { inspect: 5000 } };
    log = captureLog();
    balancer = await startBalancer({ services, listeners: [listener] }, { logger: log.logger });
    port = balancer.listenerAddress(0).port;
  });

  afterAll(async () => {
    await balancer?.close(0);
    await Promise.all(backends.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** openssl s_client to the listener naming `name`, verifying against the test CA (and the host name `verifyName`). */
  function sClient(name: string, verifyName = name): Promise<Run> {
    const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-verify_return_error', '-verify_hostname', verifyName, '-CAfile', 'ca.pem', '-ign_eof'];
    return run('openssl', args, 'who are you?\n', dir);
  }

  it.each([DB, WEB])('openssl s_client -servername %s verifies the backend’s own certificate and reaches that backend', async (name) => {
    const result = await sClient(name);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('Verify return code: 0 (ok)');
    expect(result.stdout).toContain(`subject=CN = ${name}`);
    expect(result.stdout.split('\n')).toContain(name); // the backend's answer, inside the TLS session
    const line = await log.waitFor((record) => record.msg === 'connection' && record.sni === name && record.end !== undefined);
    expect(line).toMatchObject({ service: name === DB ? 'db' : 'web', inspect: 'sni' });
  });

  it.each([DB, WEB])('curl https://%s/ through the listener verifies the chain and the name and gets that backend’s answer', async (name) => {
    const args = ['-sS', '--fail', '--max-time', '15', '--resolve', `${name}:${port}:127.0.0.1`, '--cacert', 'ca.pem', `https://${name}:${port}/`];
    const result = await run('curl', args, '', dir);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${name}\n`);
  });

  it('a name the default route sends to the db backend fails verification: the certificate is the backend’s, not one l4lb made up', async () => {
    const result = await sClient('other.example.net');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/verify error:num=62:hostname mismatch/);
    expect(await log.waitFor((record) => record.msg === 'connection' && record.sni === 'other.example.net')).toMatchObject({ service: 'db', inspect: 'sni' });
  });
});
