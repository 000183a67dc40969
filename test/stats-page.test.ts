/**
 * The stats page (src/admin/stats-page.ts) in a real headless Chromium, driven by playwright-core
 * against Debian's /usr/bin/chromium: the page is served at the admin listener's `/`, reads the
 * token from the URL fragment or its form, lists every backend with its state and health, and its
 * drain button changes the state through the API. It loads nothing but its own origin, and values
 * from the API are text, never markup.
 *
 * With L4LB_SCREENSHOT=1 it also saves docs/stats-page.png (the README's picture); CI leaves the
 * committed file alone. With CI=true a missing Chromium is a failure; elsewhere the block is skipped.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminServer, type AdminTarget } from '../src/admin/server.js';
import type { KernelServiceStats } from '../src/kernel/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { connectClient, freePort, readAll, startNamedServer, type TestServer } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'stats-page-token-0123456789';
/** A name that would be markup if the page used innerHTML. */
const HOSTILE = '<img src=x onerror="document.title=1">';

/** Kernel services' /stats rows, as the kernel writer reports them: NAT with nft counters, DSR with pins. */
const KERNEL_ROWS: KernelServiceStats[] = [{
  service: 'web-nat', mode: 'nat', table: 'inet l4lb_nat', vip: '192.0.2.10:80', slots: 13, conntrack: 4,
  backends: [
    { name: 'n1', address: '192.0.2.11:80', state: 'active', health: 'up', slots: 13, packets: 120, bytes: 4096 },
    { name: 'n2', address: '192.0.2.12:80', state: 'active', health: 'down', slots: 0, packets: 7, bytes: 300 },
  ],
}, {
  service: 'web-dsr', mode: 'dsr', table: 'ip l4lb_dsr', vip: '192.0.2.200:80', slots: 31, pins: 60,
  backends: [
    { name: 'd1', address: '203.0.113.11:80', state: 'active', health: 'up', slots: 31, pins: 41 },
    { name: 'd2', address: '203.0.113.12:80', state: 'draining', health: 'up', slots: 0, pins: 19 },
  ],
}];

/** What this machine lacks to run the page in a browser, or undefined. */
function missing(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no ${CHROMIUM} (apt-get install chromium)`;
  try {
    createRequire(import.meta.url).resolve('playwright-core');
  } catch {
    return 'no playwright-core in node_modules (npm ci)';
  }
  return undefined;
}

const need = requirement('stats page in headless Chromium', missing());

let servers: TestServer[] = [];
let balancer: Balancer;
let admin: AdminServer;
let browser: Browser | undefined;
let base = '';

beforeAll(async () => {
  if (need.skip) return;
  const lacking = missing();
  if (lacking !== undefined) throw new Error(`${lacking}: .ci/run installs Debian's chromium package and npm ci playwright-core`);
  servers = await Promise.all(['pg1', 'pg2', 'redis1', 'redis2'].map((name) => startNamedServer(name)));
  const dead = await freePort();
  const log = captureLog();
  const check = { type: 'tcp' as const, interval: 200, timeout: 200, rise: 1, fall: 1, initial: 'up' as const };
  balancer = await startBalancer(
    {
      ...configOf(
        proxyService([backend('pg1', servers[0].port), backend('pg2', servers[1].port), backend('pg3', dead)], { name: 'postgres', balance: 'roundrobin', healthCheck: check }),
        proxyService([backend('redis1', servers[2].port), backend('redis2', servers[3].port, { backup: true })], { name: 'redis', balance: 'roundrobin' }),
        proxyService([backend(HOSTILE, servers[3].port)], { name: 'markup' }),
      ),
      // A TLS passthrough listener whose default route takes what is not TLS.
      listeners: [{ listen: { host: '127.0.0.1', port: 0 }, routes: [{ default: 'markup' }], timeouts: { inspect: 5000 } }],
    },
    { logger: log.logger },
  );
  await log.waitFor((record) => record.msg === 'backend health changed' && record.backend === 'pg3');
  // Some traffic, so the counters and bytes columns are not all zero.
  for (let i = 0; i < 6; i++) {
    for (const service of ['postgres', 'redis', 'markup']) {
      const socket = await connectClient(balancer.address(service).port);
      socket.end('x'.repeat(100 * (i + 1)));
      await readAll(socket);
    }
  }
  // Two clients that are not TLS, through the listener to its default route.
  for (let i = 0; i < 2; i++) {
    const socket = await connectClient(balancer.listenerAddress(0).port);
    socket.end('GET / HTTP/1.0\r\n\r\n');
    await readAll(socket);
  }
  // The balancer as the admin API sees it, with a kernel service beside it (its rows as the kernel writer reports them).
  const running = balancer;
  const target: AdminTarget = {
    stats: () => running.stats(),
    events: running.events,
    setState: (...args) => running.setState(...args),
    changeBackends: (...args) => running.changeBackends(...args),
    listenerStats: () => running.listenerStats(),
    kernel: () => Promise.resolve(KERNEL_ROWS),
  };
  admin = await startAdmin(target, { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
  base = `http://127.0.0.1:${admin.address().port}`;
  // launch() gives the browser a new empty profile (user data dir) of its own and deletes it on close.
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await admin?.close();
  await balancer?.close(0);
  await Promise.all(servers.map((server) => server.close()));
});

interface Row {
  service: string;
  backend: string;
  state: string;
  health: string;
  total: string;
}

/** The backend rows as the page shows them. */
function rows(page: Page): Promise<Row[]> {
  return page.$$eval('table[data-service] tr[data-backend]', (trs) =>
    trs.map((tr) => ({
      service: tr.closest('table')?.getAttribute('data-service') ?? '',
      backend: tr.getAttribute('data-backend') ?? '',
      state: tr.querySelector('td.state')?.textContent ?? '',
      health: tr.querySelector('td.health')?.textContent ?? '',
      total: tr.querySelector('td.total')?.textContent ?? '',
    })),
  );
}

async function apiState(service: string, name: string): Promise<string> {
  const response = await fetch(`${base}/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const { services } = (await response.json()) as { services: { name: string; backends: { name: string; state: string }[] }[] };
  return services.find((row) => row.name === service)?.backends.find((row) => row.name === name)?.state ?? 'missing';
}

describe.skipIf(need.skip)(need.title, () => {
  it('serves one self-contained page at / without the token, with a strict CSP', async () => {
    const response = await fetch(`${base}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).not.toMatch(/\b(src|href)=["']?(https?:)?\/\//);
    expect(html).not.toContain('innerHTML');
  });

  it('lists every backend with state and health, and drain changes the state through the API and on the page', async () => {
    const context = await browser!.newContext({ viewport: { width: 1400, height: 800 } });
    const page = await context.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    try {
      await page.goto(`${base}/#token=${TOKEN}`);
      await page.waitForSelector('tr[data-backend="pg3"] td.health');
      const shown = await rows(page);
      expect(shown.map(({ service, backend: name }) => `${service}/${name}`)).toEqual(['postgres/pg1', 'postgres/pg2', 'postgres/pg3', 'redis/redis1', 'redis/redis2', `markup/${HOSTILE}`]);
      expect(shown.find((row) => row.backend === 'pg3')).toMatchObject({ state: 'active', health: 'down' });
      expect(shown.find((row) => row.backend === 'pg1')).toMatchObject({ state: 'active', health: 'up' });
      expect(shown.filter((row) => row.service === 'redis').map((row) => Number(row.total))).toEqual([6, 0]); // redis2 is a backup
      expect(shown.find((row) => row.service === 'markup')?.backend).toBe(HOSTILE);
      expect(await page.textContent('table[data-service="postgres"] caption .queue')).toBe('0 queued, 0 refused');

      // The passthrough listener: the two clients that were not TLS, on the default route.
      expect(await page.textContent('table[data-listener="listeners[0]"] caption .inspecting')).toBe('0 being inspected');
      expect(await page.textContent('table[data-listener="listeners[0]"] tr[data-result="not-tls"][data-route="default"] td.count')).toBe('2');
      // The kernel service: slots per backend, health as the row's class.
      expect(await page.textContent('table[data-kernel="web-nat"] caption')).toContain('13 slots, 4 flows');
      expect(await page.textContent('table[data-kernel="web-nat"] tr[data-backend="n1"] td.slots')).toBe('13');
      expect(await page.getAttribute('table[data-kernel="web-nat"] tr[data-backend="n2"]', 'class')).toBe('down');
      expect(await page.textContent('table[data-kernel="web-dsr"] caption')).toContain('31 slots, 60 pins');
      expect(await page.textContent('table[data-kernel="web-dsr"] tr[data-backend="d2"] td.pins')).toBe('19');
      expect(await page.getAttribute('table[data-kernel="web-dsr"] tr[data-backend="d2"]', 'class')).toBe('draining');

      // A hostile name is text: the row exists, its cell reads the name, and no <img> was made of it.
      expect(await page.locator('td.name img').count()).toBe(0);
      expect(await page.title()).toBe('l4lb statistics');

      await page.click('tr[data-backend="pg2"] button[data-action="draining"]');
      await page.locator('tr[data-backend="pg2"] td.state').filter({ hasText: /^draining$/ }).waitFor({ timeout: 5_000 });
      expect(await apiState('postgres', 'pg2')).toBe('draining');
      expect(await page.isDisabled('tr[data-backend="pg2"] button[data-action="draining"]')).toBe(true);

      // It refreshes itself: a change made elsewhere shows up without a reload of the page.
      await fetch(`${base}/services/redis/backends/redis1/state`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"state":"maintenance"}' });
      await page.locator('tr[data-backend="redis1"] td.state').filter({ hasText: /^maintenance$/ }).waitFor({ timeout: 10_000 });

      if (process.env.L4LB_SCREENSHOT === '1') {
        // The README's picture: the heading and the first two services (not the markup one).
        const boxes = await Promise.all(['postgres', 'redis'].map((name) => page.locator(`table[data-service="${name}"]`).boundingBox()));
        const right = Math.max(...boxes.map((box) => box!.x + box!.width));
        const bottom = boxes[1]!.y + boxes[1]!.height;
        await page.screenshot({ path: new URL('../docs/stats-page.png', import.meta.url).pathname, clip: { x: 0, y: 0, width: Math.ceil(right + 20), height: Math.ceil(bottom + 16) } });
      }

      await page.click('tr[data-backend="pg2"] button[data-action="active"]');
      await page.locator('tr[data-backend="pg2"] td.state').filter({ hasText: /^active$/ }).waitFor({ timeout: 5_000 });
      expect(await apiState('postgres', 'pg2')).toBe('active');
      expect(requested.every((url) => url.startsWith(`${base}/`))).toBe(true);
    } finally {
      await context.close();
    }
  }, 30_000);

  it('asks for the token when the fragment has none, and shows the rows once given', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${base}/`);
      await page.waitForSelector('#login:not([hidden])');
      expect(await page.textContent('#status')).toBe('this admin API needs a token');
      expect(await page.locator('tr[data-backend]').count()).toBe(0);
      await page.fill('#token', TOKEN);
      await page.click('#login button[type="submit"]');
      await page.waitForSelector('tr[data-backend="pg1"]');
      expect(await page.isHidden('#login')).toBe(true);
    } finally {
      await context.close();
    }
  }, 30_000);
});
