#!/usr/bin/env node
// The lab's client: opens TCP flows to the VIP from chosen source ports and reports which backend
// answered each (the first line the backend service sends).
//   probe VIP PORT FIRST_SPORT COUNT [PARALLEL]  one flow per source port; prints "SPORT BACKEND" (or
//                                                "SPORT ERROR CODE"); flows end with a reset, so no
//                                                TIME_WAIT blocks the same ports in the next run
//   hold VIP PORT FIRST_SPORT COUNT              opens the flows, prints "SPORT BACKEND" each, then
//                                                READY; on each stdin line "check", asks every flow
//                                                again and prints "SPORT BACKEND|CLOSED", then CHECKED;
//                                                on end of stdin, resets the flows and exits
//   stream VIP PORT FIRST_SPORT COUNT [INTERVAL_MS]  long-lived flows that keep talking: each sends a
//                                                line every INTERVAL_MS (200) and the backend echoes
//                                                its name. Prints, with T = Date.now() in ms:
//                                                "T SPORT OPEN BACKEND" (or "T SPORT BROKEN CODE"),
//                                                then "T READY"; "T SPORT ECHO BACKEND" per echo;
//                                                "T SPORT BROKEN CODE" when a flow is reset, closed or
//                                                silent for 20 s; on end of stdin "T DONE", resets the
//                                                flows and exits. A flow that sends nothing would never
//                                                notice a dead path; these notice within one interval.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, vip, portText, firstText, countText, parallelText] = process.argv.slice(2);
const port = Number(portText);
const first = Number(firstText);
const count = Number(countText);
if (!['probe', 'hold', 'stream'].includes(mode) || !vip || !(port > 0) || !(first > 0) || !(count > 0)) {
  process.stderr.write('usage: client.mjs probe|hold|stream VIP PORT FIRST_SPORT COUNT [PARALLEL|INTERVAL_MS]\n');
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.L4LB_LAB_TIMEOUT_MS ?? 5000);
/** A streaming flow that gets no echo for this long is declared broken (an application would give up). */
const SILENT_LIMIT_MS = 20_000;

/** One flow: resolves with the socket and the first line, or rejects. */
function open(sport) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: vip, port, localPort: sport, timeout: TIMEOUT_MS });
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk.toString('latin1');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.off('data', onData);
      socket.setTimeout(0);
      resolve({ socket, line: buffered.slice(0, newline) });
    };
    socket.on('data', onData);
    socket.on('timeout', () => { socket.destroy(); reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })); });
    socket.on('error', reject);
    socket.on('close', () => reject(Object.assign(new Error('closed'), { code: 'ECLOSED' })));
  });
}

function nextLine(socket) {
  return new Promise((resolve) => {
    let buffered = '';
    const timer = setTimeout(() => finish('CLOSED'), TIMEOUT_MS);
    const onData = (chunk) => {
      buffered += chunk.toString('latin1');
      const newline = buffered.indexOf('\n');
      if (newline >= 0) finish(buffered.slice(0, newline));
    };
    const finish = (value) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(value);
    };
    const onClose = () => finish('CLOSED');
    socket.on('data', onData);
    socket.on('close', onClose);
    if (socket.destroyed) finish('CLOSED');
    else socket.write('check\n');
  });
}

/** Streams on one flow until stopped; reports each echo and the flow's end. */
function stream(sport, socket, interval, say) {
  let buffered = '';
  let lastEcho = Date.now();
  let ended = false;
  const end = (code) => {
    if (ended) return;
    ended = true;
    clearInterval(ticker);
    say(`${sport} BROKEN ${code}`);
    socket.destroy();
  };
  const ticker = setInterval(() => {
    if (Date.now() - lastEcho > SILENT_LIMIT_MS) end('SILENT');
    else socket.write('ping\n');
  }, interval);
  socket.on('data', (chunk) => {
    buffered += chunk.toString('latin1');
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      lastEcho = Date.now();
      say(`${sport} ECHO ${buffered.slice(0, newline)}`);
      buffered = buffered.slice(newline + 1);
    }
  });
  socket.on('error', (error) => end(error.code ?? 'ERROR'));
  socket.on('close', () => end('CLOSED'));
  return () => {
    ended = true;
    clearInterval(ticker);
    socket.removeAllListeners('close');
    socket.on('error', () => {});
    if (!socket.destroyed) socket.resetAndDestroy();
  };
}

if (mode === 'stream') {
  const interval = Math.max(10, Number(parallelText ?? 200));
  const say = (text) => process.stdout.write(`${Date.now()} ${text}\n`);
  const opened = await Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const sport = first + index;
      try {
        const { socket, line } = await open(sport);
        socket.removeAllListeners('close');
        socket.removeAllListeners('error');
        say(`${sport} OPEN ${line}`);
        return { sport, socket };
      } catch (error) {
        say(`${sport} BROKEN ${error.code ?? error.message}`);
        return undefined;
      }
    }),
  );
  say('READY');
  const stops = opened.filter((flow) => flow !== undefined).map(({ sport, socket }) => stream(sport, socket, interval, say));
  for await (const _ of createInterface({ input: process.stdin })) {
    // Commands are not used: the flows run until stdin ends.
  }
  say('DONE');
  for (const stop of stops) stop();
} else if (mode === 'probe') {
  const parallel = Math.max(1, Number(parallelText ?? 16));
  const results = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const sport = first + index;
      try {
        const { socket, line } = await open(sport);
        socket.on('error', () => {});
        socket.resetAndDestroy();
        results[index] = `${sport} ${line}`;
      } catch (error) {
        results[index] = `${sport} ERROR ${error.code ?? error.message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  process.stdout.write(results.join('\n') + '\n');
} else {
  const flows = [];
  for (let index = 0; index < count; index++) {
    const sport = first + index;
    try {
      const { socket, line } = await open(sport);
      socket.on('error', () => {});
      socket.removeAllListeners('close');
      flows.push({ sport, socket });
      process.stdout.write(`${sport} ${line}\n`);
    } catch (error) {
      process.stdout.write(`${sport} ERROR ${error.code ?? error.message}\n`);
    }
  }
  process.stdout.write('READY\n');
  for await (const command of createInterface({ input: process.stdin })) {
    if (command.trim() !== 'check') continue;
    const answers = await Promise.all(flows.map(({ socket }) => nextLine(socket)));
    flows.forEach(({ sport }, index) => process.stdout.write(`${sport} ${answers[index]}\n`));
    process.stdout.write('CHECKED\n');
  }
  for (const { socket } of flows) if (!socket.destroyed) socket.resetAndDestroy();
}
