// Minimal typing of the npm `hashring` package, used only as a test oracle.
declare module 'hashring' {
  export default class HashRing {
    constructor(servers: string[] | Record<string, number>, algorithm?: string, options?: Record<string, unknown>);
    get(key: string): string | undefined;
    range(key: string, size?: number, unique?: boolean): string[];
  }
}
