// Minimal typing of the npm `hashring` package (a dev dependency): the oracle of the ring tests
// and the baseline of `npm run bench:hash`.
declare module 'hashring' {
  export default class HashRing {
    constructor(servers: string[] | Record<string, number>, algorithm?: string, options?: Record<string, unknown>);
    get(key: string): string | undefined;
    range(key: string, size?: number, unique?: boolean): string[];
  }
}
