/**
 * Typed errors with stable codes (the undici habit, lib/core/errors.js): callers branch on `code`
 * and read the facts from fields (`service`, `backend`, `option`…), never from the message.
 * The CLI turns any LbError into one line per problem on stderr and an exit code; nothing else
 * should print a stack. docs/errors.md lists every code, who raises it and the fields it carries.
 *
 * An error crossing IPC (node:cluster with serialization 'advanced' is the structured-clone
 * algorithm, which keeps only `message` of an Error, not its class or fields; JSON keeps less) is
 * sent as `toWire()`, a plain object, and rebuilt with `fromWire()`: same class, code, message and
 * fields. That is why every class with fields lives here, in the one module both sides load.
 */

/** Every code, in the order docs/errors.md lists them. The `LbErrorCode` union is derived from it. */
export const LB_ERROR_CODES = [
  'LB_ERR_INVALID_ARGUMENT',
  'LB_ERR_NO_BACKENDS',
  'LB_ERR_DUPLICATE_BACKEND',
  'LB_ERR_BAD_WEIGHT',
  'LB_ERR_TABLE_SIZE',
  'LB_ERR_CONFIG',
  'LB_ERR_LISTEN',
  'LB_ERR_RESOLVE',
  'LB_ERR_UNKNOWN_SERVICE',
  'LB_ERR_UNKNOWN_BACKEND',
  'LB_ERR_RUNTIME_CHANGE',
  'LB_ERR_ADMIN',
  'LB_ERR_CLOSED',
  'LB_ERR_PROXY_MALFORMED',
  'LB_ERR_PROXY_TOO_LONG',
  'LB_ERR_PROXY_UNSUPPORTED',
  'LB_ERR_WORKER_EXITED',
  'LB_ERR_UPGRADE',
  'LB_ERR_INTERNAL',
  'LB_ERR_KERNEL',
] as const;

export type LbErrorCode = (typeof LB_ERROR_CODES)[number];

function isLbErrorCode(value: unknown): value is LbErrorCode {
  return typeof value === 'string' && (LB_ERROR_CODES as readonly string[]).includes(value);
}

/** What a field may hold: values that JSON and the structured-clone algorithm both carry unchanged. */
export type WireValue = string | number | boolean | null | readonly WireValue[] | { readonly [key: string]: WireValue };

export type WireFields = { readonly [key: string]: WireValue };

/** An LbError as plain data, for IPC or a log line. */
export interface LbErrorWire {
  readonly code: LbErrorCode;
  /** The class that sent it (`ResolveError`, `ConfigError`…); `fromWire` rebuilds that class. */
  readonly name: string;
  readonly message: string;
  /** The class's facts, as its properties hold them; `{}` for a plain LbError. */
  readonly fields: WireFields;
  /** Why, one line per problem; present when the error lists several (RefusedError and its subclasses). */
  readonly problems?: readonly string[];
}

export class LbError extends Error {
  readonly code: LbErrorCode;

  constructor(code: LbErrorCode, message: string) {
    super(message);
    this.name = 'LbError';
    this.code = code;
  }

  /** Why, one line per problem, as a user reads it: the message, unless a subclass lists several. */
  lines(): string[] {
    return [this.message];
  }

  /** The names of the facts `keep` set, in order: what `wireFields` sends. */
  #kept: readonly string[] = [];

  /**
   * Sets each of `facts` as a property of this error (a subclass declares them with `declare
   * readonly`) and sends them on the wire as they are. Called once, by the subclass's constructor.
   */
  protected keep(facts: WireFields): void {
    Object.assign(this, facts);
    this.#kept = Object.keys(facts);
  }

  /** The facts a subclass carries beyond code and message: the ones it kept, lists copied. */
  protected wireFields(): WireFields {
    const self = this as unknown as WireFields;
    return Object.fromEntries(this.#kept.map((name) => {
      const value = self[name] as WireValue;
      return [name, Array.isArray(value) ? [...(value as readonly WireValue[])] : value];
    }));
  }

  /** Plain data that survives JSON and structured clone; `fromWire(error.toWire())` is an equal error. */
  toWire(): LbErrorWire {
    return { code: this.code, name: this.name, message: this.message, fields: this.wireFields() };
  }
}

export function isLbError(value: unknown): value is LbError {
  return value instanceof LbError;
}

/**
 * Why something was refused, one line per problem: a RefusedError's (ConfigError's) lines, an
 * LbError's message, otherwise `internal error: …` (anything else is a bug, and says so).
 */
export function problemsOf(error: unknown): string[] {
  if (error instanceof LbError) return error.lines();
  return [`internal error: ${error instanceof Error ? error.message : String(error)}`];
}

// -------------------------------------------------------------------------------------------------
// Errors that list several problems

/**
 * A request refused for one or more reasons, each a line of its own (a file with three bad keys, a
 * reload that two workers refused). `message` is the lines joined with "\n".
 */
export class RefusedError extends LbError {
  readonly problems: readonly string[];

  constructor(code: LbErrorCode, problems: readonly string[]) {
    super(code, problems.join('\n'));
    this.name = 'RefusedError';
    this.problems = [...problems];
  }

  override lines(): string[] {
    return [...this.problems];
  }

  override toWire(): LbErrorWire {
    return { ...super.toWire(), problems: [...this.problems] };
  }
}

/**
 * One thing wrong with a configuration file. `path` is where in the document, in the style a reader
 * of the YAML uses (`services[0].backends[1].address`), or '' for the file as a whole. `line`/`column`
 * (1-based) are set for syntax errors.
 */
export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Formats a problem as the one line a user reads: `FILE: path: message` or `FILE:LINE:COL: message`. */
export function formatProblem(file: string, problem: ConfigProblem): string {
  const where = problem.line === undefined ? file : `${file}:${problem.line}:${problem.column ?? 1}`;
  return problem.path === '' ? `${where}: ${problem.message}` : `${where}: ${problem.path}: ${problem.message}`;
}

/** Every problem found in one configuration file: `issues` as found, `problems`/`lines()` as printed. */
export class ConfigError extends RefusedError {
  readonly file: string;
  readonly issues: readonly ConfigProblem[];

  constructor(file: string, issues: readonly ConfigProblem[]) {
    super('LB_ERR_CONFIG', issues.map((issue) => formatProblem(file, issue)));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues.map((issue) => ({ ...issue }));
  }

  protected override wireFields(): WireFields {
    const issues = this.issues.map((issue): WireFields => {
      const found: WireFields = { path: issue.path, message: issue.message };
      return issue.line === undefined ? found : { ...found, line: issue.line, column: issue.column ?? 1 };
    });
    return { file: this.file, issues };
  }
}

// -------------------------------------------------------------------------------------------------
// Start-up and reload: names and sockets

/** `where` names the config entry (`services[0] (web)`, `admin.listen`) the failure belongs to. */
export interface ResolveFacts {
  readonly where: string;
  /** The host name as configured. */
  readonly host: string;
  /** The resolver's errno code (`ENOTFOUND`, `EAI_AGAIN`), or its message when it gave no code. */
  readonly cause: string;
}

/** A backend's host name resolves to no address (at start or reload; never per connection). */
export class ResolveError extends LbError {
  declare readonly where: string;
  declare readonly host: string;
  declare readonly cause: string;

  constructor(facts: ResolveFacts) {
    super('LB_ERR_RESOLVE', `${facts.where}: cannot resolve "${facts.host}" (${facts.cause})`);
    this.name = 'ResolveError';
    this.keep({ where: facts.where, host: facts.host, cause: facts.cause });
  }
}

/** Why a kernel table could not be written (src/kernel nft.ts). */
export const KERNEL_FAILURES = ['nft-missing', 'not-root', 'table-owned', 'refused'] as const;
export type KernelFailure = (typeof KERNEL_FAILURES)[number];

export interface KernelFacts {
  readonly cause: KernelFailure;
  /** The table concerned: `inet l4lb_nat`, `ip l4lb_dsr`. */
  readonly table: string;
  /** What nft said (its first lines), or what is missing. */
  readonly detail: string;
}

const KERNEL_ADVICE: Record<KernelFailure, string> = {
  'nft-missing': 'install nftables (the `nft` binary must be on PATH)',
  'not-root': 'run as root (or with CAP_NET_ADMIN)',
  'table-owned': 'a table of that name exists and was not made by l4lb: rename or remove it (`nft delete table …`)',
  refused: 'nft refused the transaction; the previous table stays in force',
};

/** A kernel table write failed; `cause` says why, `detail` what nft said. */
export class KernelError extends LbError {
  declare readonly cause: KernelFailure;
  declare readonly table: string;
  declare readonly detail: string;

  constructor(facts: KernelFacts) {
    super('LB_ERR_KERNEL', `${facts.table}: ${KERNEL_ADVICE[facts.cause]}${facts.detail === '' ? '' : ` (${facts.detail})`}`);
    this.name = 'KernelError';
    this.keep({ cause: facts.cause, table: facts.table, detail: facts.detail });
  }
}

/** Why a listener could not bind, for callers that advise (the demo suggests another port). */
const LISTEN_FAILURES = ['address-in-use', 'permission-denied', 'other'] as const;
export type ListenFailure = (typeof LISTEN_FAILURES)[number];

/** The failure an errno code of listen(2) means. */
export function listenFailureOf(errno: string | undefined): ListenFailure {
  switch (errno) {
    case 'EADDRINUSE':
      return 'address-in-use';
    case 'EACCES':
    case 'EPERM':
      return 'permission-denied';
    default:
      return 'other';
  }
}

export interface ListenFacts {
  /** The config entry that asked for the socket: `services[0] (web)`, `admin.listen`. */
  readonly where: string;
  /** The address as written: `127.0.0.1:80`, `[::1]:80`. */
  readonly address: string;
  readonly failure: ListenFailure;
  /** The errno code (`EADDRINUSE`, `EADDRNOTAVAIL`), or the system's message when it gave no code. */
  readonly cause: string;
}

/**
 * A socket could not be bound. Message: `WHERE: cannot listen on ADDRESS: address already in use`
 * (or `permission denied`, or the cause), the words src/proxy/service.ts has always printed.
 */
export class ListenError extends LbError {
  declare readonly where: string;
  declare readonly address: string;
  declare readonly failure: ListenFailure;
  declare readonly cause: string;

  constructor(facts: ListenFacts) {
    super('LB_ERR_LISTEN', `${facts.where}: cannot listen on ${facts.address}: ${describeListenFailure(facts.failure, facts.cause)}`);
    this.name = 'ListenError';
    this.keep({ where: facts.where, address: facts.address, failure: facts.failure, cause: facts.cause });
  }
}

function describeListenFailure(failure: ListenFailure, cause: string): string {
  switch (failure) {
    case 'address-in-use':
      return 'address already in use';
    case 'permission-denied':
      return 'permission denied';
    case 'other':
      return cause;
    default: {
      const never: never = failure;
      return String(never);
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Admin requests: names that do not exist

/** `service` names no running service; `known` are the ones that do (possibly none). */
export class UnknownServiceError extends LbError {
  declare readonly service: string;
  declare readonly known: readonly string[];

  constructor(facts: { readonly service: string; readonly known: readonly string[] }) {
    super('LB_ERR_UNKNOWN_SERVICE', `no service "${facts.service}" (services: ${facts.known.join(', ') || 'none'})`);
    this.name = 'UnknownServiceError';
    this.keep({ service: facts.service, known: [...facts.known] });
  }
}

/** `service` exists but has no backend `backend`; `known` are its backends. */
export class UnknownBackendError extends LbError {
  declare readonly service: string;
  declare readonly backend: string;
  declare readonly known: readonly string[];

  constructor(facts: { readonly service: string; readonly backend: string; readonly known: readonly string[] }) {
    super('LB_ERR_UNKNOWN_BACKEND', `service "${facts.service}" has no backend "${facts.backend}" (backends: ${facts.known.join(', ')})`);
    this.name = 'UnknownBackendError';
    this.keep({ service: facts.service, backend: facts.backend, known: [...facts.known] });
  }
}

/** A runtime `add` names a backend its service already has (in the file, from DNS, or added before). */
export class BackendExistsError extends LbError {
  declare readonly service: string;
  declare readonly backend: string;

  constructor(facts: { readonly service: string; readonly backend: string }) {
    super('LB_ERR_DUPLICATE_BACKEND', `service "${facts.service}" already has a backend "${facts.backend}" (remove it first, or set its weight)`);
    this.name = 'BackendExistsError';
    this.keep({ service: facts.service, backend: facts.backend });
  }
}

/**
 * Why a runtime change of a service's backends was refused: a value out of range (`bad-weight`,
 * `bad-name`, `bad-address`), a result the file could not hold either (`table-too-small`: more
 * backends than Maglev slots; `no-primary`: no backend left but backups), or a runtime that
 * cannot apply it (`not-supported`: a cluster).
 */
const RUNTIME_CHANGE_REASONS = ['bad-weight', 'bad-name', 'bad-address', 'table-too-small', 'no-primary', 'not-supported'] as const;
export type RuntimeChangeReason = (typeof RUNTIME_CHANGE_REASONS)[number];

export class RuntimeChangeError extends LbError {
  declare readonly service: string;
  declare readonly backend: string;
  declare readonly reason: RuntimeChangeReason;

  constructor(facts: { readonly service: string; readonly backend: string; readonly reason: RuntimeChangeReason }, message: string) {
    super('LB_ERR_RUNTIME_CHANGE', message);
    this.name = 'RuntimeChangeError';
    this.keep({ service: facts.service, backend: facts.backend, reason: facts.reason });
  }
}

// -------------------------------------------------------------------------------------------------
// Lifecycle

/**
 * `component` has begun closing or has stopped, so it refuses new work (a reload during a stop, a
 * backend added to a stopped health scheduler). The message is the caller's sentence; `component`
 * is the fact to branch on.
 */
export class ClosedError extends LbError {
  declare readonly component: string;

  constructor(facts: { readonly component: string }, message: string) {
    super('LB_ERR_CLOSED', message);
    this.name = 'ClosedError';
    this.keep({ component: facts.component });
  }
}

/** Why an upgrade (SIGUSR2, `l4lb upgrade`) did not hand over: the running l4lb serves on in each case. */
export const UPGRADE_FAILURES = ['stopping', 'sockets', 'spawn', 'exited', 'timeout'] as const;
export type UpgradeFailure = (typeof UPGRADE_FAILURES)[number];

/**
 * An upgrade that did not hand over: l4lb was stopping, the listening sockets could not be had (no
 * cluster worker running), the new process could not be started, exited before it was ready, or
 * was not ready in time (then it is killed).
 * `problems` is the sentence saying so, then the new process's own problems when it reported any
 * (a configuration file it refused, a port it could not bind). `pid` is the new process's, if any.
 */
export class UpgradeError extends RefusedError {
  declare readonly failure: UpgradeFailure;
  declare readonly pid: number | null;

  constructor(facts: { readonly failure: UpgradeFailure; readonly pid: number | null }, problems: readonly string[]) {
    super('LB_ERR_UPGRADE', problems);
    this.name = 'UpgradeError';
    this.keep({ failure: facts.failure, pid: facts.pid });
  }
}

// -------------------------------------------------------------------------------------------------
// Health checker options

/** The checker options that can be wrong, by the name the health module gives them (src/health), and the check type each belongs to. */
const CHECK_OF_OPTION = {
  path: 'http',
  host: 'http',
  expectStatus: 'http',
  user: 'pgsql',
  database: 'pgsql',
} as const satisfies Record<string, 'http' | 'pgsql'>;
/** A checker option that can be wrong. */
export type CheckOption = keyof typeof CHECK_OF_OPTION;
const CHECK_OPTIONS = Object.keys(CHECK_OF_OPTION) as CheckOption[];

/**
 * A health checker refused one of its options (at configuration time, never per probe). `detail`
 * says what is wrong without naming the check or the option, so the config layer can put its own
 * key name in front: `describe('expect')`.
 */
export class CheckOptionError extends LbError {
  readonly check: 'http' | 'pgsql';
  declare readonly option: CheckOption;
  declare readonly detail: string;

  constructor(facts: { readonly option: CheckOption; readonly detail: string }) {
    const check = CHECK_OF_OPTION[facts.option];
    super('LB_ERR_INVALID_ARGUMENT', `${check} health check ${describeOption(facts.option, facts.option, facts.detail)}`);
    this.name = 'CheckOptionError';
    this.check = check;
    this.keep({ option: facts.option, detail: facts.detail });
  }

  /**
   * The problem with the option called `name`: `path must start with '/'…`, or, for expectStatus
   * (whose detail names the bad element of a list, not the option), `expect: "9xx" is not a status…`.
   */
  describe(name: string): string {
    return describeOption(this.option, name, this.detail);
  }
}

function describeOption(option: CheckOption, name: string, detail: string): string {
  switch (option) {
    case 'expectStatus':
      return `${name}: ${detail}`;
    case 'path':
    case 'host':
    case 'user':
    case 'database':
      return `${name} ${detail}`;
    default: {
      const never: never = option;
      return String(never);
    }
  }
}

// -------------------------------------------------------------------------------------------------
// From the wire

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isPositiveInteger = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1;

/** True when `value` has the shape `toWire()` produces (what arrives over IPC is not trusted to). */
export function isLbErrorWire(value: unknown): value is LbErrorWire {
  return (
    isRecord(value) &&
    isLbErrorCode(value.code) &&
    isString(value.name) &&
    isString(value.message) &&
    isRecord(value.fields) &&
    (value.problems === undefined || isStringList(value.problems))
  );
}

function configProblemOf(value: unknown): ConfigProblem | undefined {
  if (!isRecord(value) || !isString(value.path) || !isString(value.message)) return undefined;
  if (value.line === undefined) return { path: value.path, message: value.message };
  if (!isPositiveInteger(value.line) || !isPositiveInteger(value.column)) return undefined;
  return { path: value.path, message: value.message, line: value.line, column: value.column };
}

/** A check that a wire field holds a value of type T. */
type Check<T> = (value: unknown) => value is T;

/** One of `known` (a closed union's values). */
const oneOf =
  <T extends string>(known: readonly T[]): Check<T> =>
  (value): value is T =>
    known.some((each) => each === value);
const isPidOrNull: Check<number | null> = (value): value is number | null => value === null || isPositiveInteger(value);

/**
 * A rebuild from the fields `checks` names: each field checked, then `build` with them typed; undefined
 * when any does not fit (`build` may refuse too: a class that also needs the wire's problems).
 */
function rebuildFrom<F>(checks: { readonly [K in keyof F]: Check<F[K]> }, build: (facts: F, wire: LbErrorWire) => LbError | undefined): (wire: LbErrorWire) => LbError | undefined {
  return (wire) => {
    const facts: Partial<F> = {};
    for (const name of Object.keys(checks) as (keyof F & string)[]) {
      const value = wire.fields[name];
      if (!checks[name](value)) return undefined;
      facts[name] = value;
    }
    return build(facts as F, wire);
  };
}

/** Each class's rebuild from its fields; undefined when the fields do not fit (then a plain LbError). */
const REBUILD: Readonly<Record<string, (wire: LbErrorWire) => LbError | undefined>> = {
  LbError: (wire) => new LbError(wire.code, wire.message),
  RefusedError: (wire) => (wire.problems === undefined ? undefined : new RefusedError(wire.code, wire.problems)),
  ConfigError: ({ fields }) => {
    if (!isString(fields.file) || !Array.isArray(fields.issues)) return undefined;
    const issues = fields.issues.map(configProblemOf);
    return issues.every((issue): issue is ConfigProblem => issue !== undefined) ? new ConfigError(fields.file, issues) : undefined;
  },
  KernelError: rebuildFrom({ cause: oneOf(KERNEL_FAILURES), table: isString, detail: isString }, (facts) => new KernelError(facts)),
  ResolveError: rebuildFrom({ where: isString, host: isString, cause: isString }, (facts) => new ResolveError(facts)),
  ListenError: rebuildFrom({ where: isString, address: isString, failure: oneOf(LISTEN_FAILURES), cause: isString }, (facts) => new ListenError(facts)),
  UnknownServiceError: rebuildFrom({ service: isString, known: isStringList }, (facts) => new UnknownServiceError(facts)),
  UnknownBackendError: rebuildFrom({ service: isString, backend: isString, known: isStringList }, (facts) => new UnknownBackendError(facts)),
  UpgradeError: rebuildFrom({ failure: oneOf(UPGRADE_FAILURES), pid: isPidOrNull }, (facts, { problems }) => (problems === undefined ? undefined : new UpgradeError(facts, problems))),
  BackendExistsError: rebuildFrom({ service: isString, backend: isString }, (facts) => new BackendExistsError(facts)),
  RuntimeChangeError: rebuildFrom({ service: isString, backend: isString, reason: oneOf(RUNTIME_CHANGE_REASONS) }, (facts, wire) => new RuntimeChangeError(facts, wire.message)),
  ClosedError: rebuildFrom({ component: isString }, (facts, wire) => new ClosedError(facts, wire.message)),
  CheckOptionError: rebuildFrom({ option: oneOf(CHECK_OPTIONS), detail: isString }, (facts) => new CheckOptionError(facts)),
};

/**
 * The error `wire` describes: the class named by `wire.name` with its fields, or, for a class this
 * module does not know (a subclass defined elsewhere) or fields that do not fit it, a RefusedError
 * when the wire lists problems and a plain LbError otherwise. Post: code, name, message and lines()
 * are the sender's, whichever class is rebuilt.
 */
export function fromWire(wire: LbErrorWire): LbError {
  const rebuild = Object.hasOwn(REBUILD, wire.name) ? REBUILD[wire.name] : undefined;
  const known = rebuild?.(wire);
  const rebuilt = known !== undefined && known.code === wire.code ? known : wire.problems === undefined ? new LbError(wire.code, wire.message) : new RefusedError(wire.code, wire.problems);
  rebuilt.name = wire.name;
  rebuilt.message = wire.message;
  return rebuilt;
}

/**
 * Errno codes of a connect that failed on l4lb's own host (descriptors, buffers, memory, local
 * ports), not because of the peer: never a verdict on a backend (src/proxy/local-errors.ts).
 */
export const LOCAL_ERROR_CODES = ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL'] as const;
export type LocalErrorCode = (typeof LOCAL_ERROR_CODES)[number];

const LOCAL_ERRORS = new Set<string>(LOCAL_ERROR_CODES);

/** Whether `code` (an errno name such as 'EMFILE') is a shortage of l4lb's own host. */
export function isLocalError(code: string | undefined): code is LocalErrorCode {
  return code !== undefined && LOCAL_ERRORS.has(code);
}
