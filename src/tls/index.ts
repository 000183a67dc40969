/** TLS as l4lb reads it without terminating it: the ClientHello's server name and ALPN (passthrough routing). */
export {
  ClientHelloParser,
  parseClientHello,
  normaliseServerName,
  MAX_FIRST_FLIGHT_BYTES,
  MAX_HELLO_BYTES,
  MAX_HELLO_RECORDS,
  type HelloFailure,
  type HelloResult,
} from './client-hello.js';
