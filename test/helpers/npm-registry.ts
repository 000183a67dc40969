/**
 * A package registry on loopback for installing l4lb's tarball without the network: it answers
 * npm's metadata requests (packuments) for l4lb's runtime dependencies from package-lock.json,
 * with each version's `integrity` from the lock. npm then takes the tarballs from its own cache by
 * that digest (`npm ci` put them there); a tarball request reaching this server means one is not
 * cached, and it is answered 404 with that reason. Only the lock's non-dev packages are served,
 * so a runtime import of a dev dependency fails the install test.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface LockEntry {
  name?: string;
  version: string;
  integrity?: string;
  dev?: boolean;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, unknown>;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
}

export interface LocalRegistry {
  readonly url: string;
  /** Requests answered 404, for the test's failure message. */
  readonly misses: string[];
  close(): Promise<void>;
}

export async function startLocalRegistry(lockFile: string): Promise<LocalRegistry> {
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as { packages: Record<string, LockEntry> };
  const misses: string[] = [];
  const server: Server = createServer((request, response) => {
    const name = decodeURIComponent((request.url ?? '/').slice(1));
    const document = packuments.get(name);
    if (document === undefined) {
      misses.push(`${request.method ?? '?'} ${request.url ?? '/'}${name.includes('/-/') ? ' (a tarball not in the npm cache: run npm ci first)' : ''}`);
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end('{"error":"not found"}');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(document));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  const packuments = new Map<string, { name: string; versions: Record<string, unknown>; 'dist-tags': Record<string, string> }>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.link === true) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const document = packuments.get(name) ?? { name, versions: {}, 'dist-tags': {} };
    document.versions[entry.version] = {
      name,
      version: entry.version,
      dependencies: entry.dependencies ?? {},
      optionalDependencies: entry.optionalDependencies,
      peerDependencies: entry.peerDependencies,
      peerDependenciesMeta: entry.peerDependenciesMeta,
      bin: entry.bin,
      engines: entry.engines,
      dist: { tarball: `${url}${name}/-/${name.split('/').pop() ?? name}-${entry.version}.tgz`, integrity: entry.integrity },
    };
    document['dist-tags'].latest = entry.version;
    packuments.set(name, document);
  }
  return {
    url,
    misses,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
