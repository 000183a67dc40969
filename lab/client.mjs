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
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, vip, portText, firstText, countText, parallelText] = process.argv.slice(2);
const port = Number(portText);
const first = Number(firstText);
const count = Number(countText);
if (!['probe', 'hold'].includes(mode) || !vip || !(port > 0) || !(first > 0) || !(count > 0)) {
  process.stderr.write('usage: client.mjs probe|hold VIP PORT FIRST_SPORT COUNT [PARALLEL]\n');
  process.exit(2);
}
const TIMEOUT_MS = 5000;

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

if (mode === 'probe') {
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
