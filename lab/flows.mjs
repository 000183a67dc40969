#!/usr/bin/env node
// The kernel lab's traffic tool (test/helpers/kernel-lab.ts, src/bench): a backend that names itself,
// and a client that opens flows from chosen source ports and reports which backend answered each.
//
//   serve NAME PORT [HOST]       every connection gets "NAME\n", and "NAME\n" again for each line it
//                                sends (so a long-lived flow can ask "who serves me now?"). Prints
//                                "listening PORT" once it accepts.
//   client --vip ADDR:PORT --first-port P --count N [--source ADDR] [--parallel K] [--hold]
//                                one flow per source port P..P+N-1. Without --hold: prints one JSON
//                                line {"flows":[{"sport","backend"}|{"sport","error"}],"errors":n} and
//                                ends each flow with a reset (no TIME_WAIT to block the port in a later
//                                run). With --hold: prints {"event":"open",...} and keeps the flows;
//                                each stdin line "check" sends a line on every flow and prints
//                                {"event":"check","flows":[{"sport","backend"}|{"sport","error"}]};
//                                end of stdin resets the flows, prints {"event":"closed"} and exits.
//   stream --vip ADDR:PORT --first-port P --count N [--source ADDR] [--parallel K]
//                                a continuous flow of new connections, each from the next unused port
//                                (P, P+1, … never reusing one: a port whose SYN went unanswered would
//                                keep its conntrack entry and its backend); prints one JSON line per
//                                flow {"t":ms,"sport","backend"|"error"} until stdin ends or N flows
//                                were made, then {"event":"done","flows":n}.
// Exit codes: 0 done (errors are reported in the JSON, not by the exit code), 2 usage.
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const TIMEOUT_MS = Number(process.env.L4LB_FLOWS_TIMEOUT_MS ?? 3000);

function usage(message) {
  process.stderr.write(`flows.mjs: ${message}\nusage: flows.mjs serve NAME PORT [HOST] | client|stream --vip ADDR:PORT --first-port P --count N [--source ADDR] [--parallel K] [--hold]\n`);
  process.exit(2);
}

function serve([name, portText, host = '0.0.0.0']) {
  const port = Number(portText);
  if (!name || !(port > 0 && port < 65536)) usage('serve needs NAME PORT');
  const reply = Buffer.from(`${name}\n`);
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(reply);
    socket.on('data', (chunk) => {
      for (const byte of chunk) if (byte === 10) socket.write(reply);
    });
    socket.on('end', () => socket.end());
  });
  server.on('error', (error) => {
    process.stderr.write(`${name}: ${host}:${port}: ${error.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, () => process.stdout.write(`listening ${port}\n`));
}

/** ADDR:PORT or [ADDR]:PORT. */
function parseVip(text) {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text ?? '') ?? /^([^:]+):(\d+)$/.exec(text ?? '');
  if (!match) usage(`--vip "${text}": expected ADDR:PORT`);
  return { host: match[1], port: Number(match[2]) };
}

/** Reads one line from the socket: resolves with it, or with {error} on reset, close or timeout. */
function readLine(socket) {
  return new Promise((resolve) => {
    let buffered = '';
    const done = (result) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(result);
    };
    const onData = (chunk) => {
      buffered += chunk.toString('latin1');
      const newline = buffered.indexOf('\n');
      if (newline >= 0) done({ line: buffered.slice(0, newline) });
    };
    const onError = (error) => done({ error: error.code ?? error.message });
    const onClose = () => done({ error: 'ECLOSED' });
    const timer = setTimeout(() => done({ error: 'ETIMEDOUT' }), TIMEOUT_MS);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

/** Opens one flow from `sport` and reads the backend's name. Resolves {sport, backend, socket} or {sport, error}. */
function openFlow(vip, source, sport) {
  return new Promise((resolve) => {
    const socket = connect({ host: vip.host, port: vip.port, localAddress: source, localPort: sport });
    socket.on('error', () => {});
    readLine(socket).then((result) => {
      if (result.line !== undefined) resolve({ sport, backend: result.line, socket });
      else {
        socket.destroy();
        resolve({ sport, error: result.error });
      }
    });
  });
}

function reset(socket) {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState === 'open') socket.resetAndDestroy();
  else socket.destroy();
}

/** Runs `task(i)` for i in 0..count-1 with at most `parallel` at once; results in order. */
async function pooled(count, parallel, task) {
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return results;
}

const publicFlow = ({ sport, backend, error }) => (error === undefined ? { sport, backend } : { sport, error });

function clientOptions(args) {
  const { values } = parseArgs({
    args,
    options: {
      vip: { type: 'string' }, 'first-port': { type: 'string' }, count: { type: 'string' }, source: { type: 'string' },
      parallel: { type: 'string' }, hold: { type: 'boolean' },
    },
    strict: true,
  });
  const first = Number(values['first-port']);
  const count = Number(values.count);
  const parallel = Number(values.parallel ?? 32);
  if (!(Number.isInteger(first) && first > 0 && first < 65536)) usage('--first-port must be a port');
  if (!(Number.isInteger(count) && count > 0 && first + count <= 65536)) usage('--count must be > 0 and fit below port 65536');
  if (!(Number.isInteger(parallel) && parallel > 0)) usage('--parallel must be > 0');
  return { vip: parseVip(values.vip), first, count, parallel, source: values.source, hold: values.hold === true };
}

async function client(args) {
  const options = clientOptions(args);
  const flows = await pooled(options.count, options.parallel, (i) => openFlow(options.vip, options.source, options.first + i));
  const errors = flows.filter((flow) => flow.error !== undefined).length;
  if (!options.hold) {
    for (const flow of flows) if (flow.socket) reset(flow.socket);
    process.stdout.write(`${JSON.stringify({ flows: flows.map(publicFlow), errors })}\n`);
    return;
  }
  process.stdout.write(`${JSON.stringify({ event: 'open', flows: flows.map(publicFlow), errors })}\n`);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() !== 'check') continue;
    const checked = await pooled(flows.length, options.parallel, async (i) => {
      const flow = flows[i];
      if (!flow.socket || flow.socket.destroyed) return { sport: flow.sport, error: flow.error ?? 'ECLOSED' };
      flow.socket.write('\n');
      const result = await readLine(flow.socket);
      if (result.line !== undefined) return { sport: flow.sport, backend: result.line };
      flow.socket.destroy();
      flow.error = result.error;
      return { sport: flow.sport, error: result.error };
    });
    process.stdout.write(`${JSON.stringify({ event: 'check', flows: checked })}\n`);
  }
  for (const flow of flows) if (flow.socket) reset(flow.socket);
  process.stdout.write(`${JSON.stringify({ event: 'closed' })}\n`);
}

async function stream(args) {
  const options = clientOptions(args);
  let stopped = false;
  let made = 0;
  process.stdin.on('end', () => { stopped = true; });
  process.stdin.resume();
  await pooled(options.count, options.parallel, async (i) => {
    if (stopped) return;
    const t = Date.now();
    const flow = await openFlow(options.vip, options.source, options.first + i);
    if (flow.socket) reset(flow.socket);
    made++;
    process.stdout.write(`${JSON.stringify({ t, ...publicFlow(flow) })}\n`);
  });
  process.stdout.write(`${JSON.stringify({ event: 'done', flows: made })}\n`);
  process.exit(0);
}

const [mode, ...rest] = process.argv.slice(2);
switch (mode) {
  case 'serve':
    serve(rest);
    break;
  case 'client':
    await client(rest);
    break;
  case 'stream':
    await stream(rest);
    break;
  default:
    usage(`unknown mode "${mode ?? ''}"`);
}
