/**
 * The one contract both backends implement. Activities only ever talk to this interface, so the
 * lifecycle workflow cannot tell Docker from EC2, and one parity suite runs against both.
 */
export type BackendKind = 'docker' | 'ec2';
export const BACKEND_KINDS: readonly BackendKind[] = ['docker', 'ec2'];

/** A transient error (daemon hiccup, throttling, network) is `unknown`, never `missing`. */
export type ResourceStatus = 'running' | 'stopped' | 'missing' | 'unknown';

export interface StartSpec {
  workspaceId: string;
  orgId: string;
  generation: number;
  runtime: string;
  /** URL the agent inside the workspace uses to reach the platform registry. */
  platformUrl: string;
  /**
   * Called only when a new resource has to be created; mints the single-use bootstrap token that is
   * the only secret the resource is started with. A retried start that finds the resource already
   * created does not call it, so the token already baked into the resource stays valid.
   */
  mintBootstrapToken: () => Promise<string>;
  /** Per-template placement overrides (EC2: AMI, instance type, subnet, security groups). */
  placement?: Placement;
  /** Per-template resource limits (docker); unset fields take the backend's defaults. */
  limits?: ResourceLimits;
}

/** What one workspace may use of its host. */
export interface ResourceLimits {
  memoryMb?: number;
  /** CPUs, fractional allowed (0.5 = half a core). */
  cpus?: number;
  /** Most processes/threads at once (a fork bomb stops here). */
  pids?: number;
}

/** Where and on what a resource runs, when a template overrides the backend's defaults. */
export interface Placement {
  imageId?: string;
  instanceType?: string;
  subnetId?: string;
  securityGroupIds?: string[];
}

export interface ResourceInfo {
  /** Docker container id / EC2 instance id. */
  instanceId: string;
  /** Where the A2A proxy forwards, as recorded by the backend (never what the agent claims). */
  endpoint: string | null;
  status: ResourceStatus;
}

export interface ManagedResource {
  instanceId: string;
  workspaceId: string;
  orgId: string;
  generation: number;
  status: ResourceStatus;
  createdAt: Date;
}

/**
 * A volume this service manages: per workspace, outliving generations (docker), or one generation's
 * own disk left without its instance (EC2's root volume; `generation` set).
 */
export interface ManagedVolume {
  /** Volume name (docker) / volume id (EC2). */
  name: string;
  workspaceId: string;
  orgId: string;
  /** The generation whose disk it is; unset for a volume every generation of the workspace uses. */
  generation?: number;
  createdAt: Date;
}

/** A network this service made for one org (docker: the org's bridge; EC2 makes none). */
export interface ManagedNetwork {
  name: string;
  orgId: string;
  createdAt: Date;
}

export interface RemoveOptions {
  /** Only this generation's resource; without it, every generation of the workspace. */
  generation?: number;
  /** Also remove persistent volumes (only meaningful when removing every generation). */
  volumes?: boolean;
}

export interface WorkspaceBackend {
  readonly kind: BackendKind;
  /** Creates the generation's resource if it does not exist, starts it if stopped. Idempotent. */
  start(spec: StartSpec): Promise<ResourceInfo>;
  /** Stops the generation's resource. Stopping a missing resource succeeds. */
  stop(workspaceId: string, generation: number): Promise<void>;
  /**
   * Removes resources (and optionally volumes). Removing what is already gone succeeds. EC2: a root
   * volume an instance left behind goes with its generation (it is never a later one's data).
   */
  remove(workspaceId: string, opts?: RemoveOptions): Promise<void>;
  status(workspaceId: string, generation: number): Promise<ResourceStatus>;
  /** Current info (endpoint may change across stop/start); null when missing. */
  describe(workspaceId: string, generation: number): Promise<ResourceInfo | null>;
  /** Every resource this service manages (labels / tags), for the orphan sweep and tests. */
  listManaged(): Promise<ManagedResource[]>;
  /**
   * Every volume this service manages that can outlive its resource, so the orphan sweep finds one
   * whose workspace or generation is gone (docker: the per-workspace volumes; EC2: root volumes
   * left `available`, attached to nothing, by an instance terminated without DeleteOnTermination).
   */
  listManagedVolumes(): Promise<ManagedVolume[]>;
  /**
   * Every per-org network this service made (docker: one bridge per org; EC2: none), so the orphan
   * sweep finds one that outlived its org's last workspace.
   */
  listManagedNetworks(): Promise<ManagedNetwork[]>;
  /**
   * Removes the org's network when no resource of the org is left to use it (docker: no container
   * of the org, running or stopped); answers whether one was removed. Gone already: false.
   */
  removeUnusedOrgNetwork(orgId: string): Promise<boolean>;
  /**
   * Removes everything of the org that carries the managed-by mark (docker: containers, volumes
   * and the org's network; EC2: instances and root volumes left behind), whatever its workspace or generation: the org
   * cascade's final sweep. Answers the ids removed; removing what is already gone succeeds.
   */
  removeOrg(orgId: string): Promise<string[]>;
  /**
   * Raw console output of the generation's resource (docker logs / GetConsoleOutput): its last
   * `maxBytes` at most (default CONSOLE_MAX_BYTES), never the whole log in memory.
   */
  bootLog(workspaceId: string, generation: number, maxBytes?: number): Promise<string>;
  /**
   * Opens a file inside the workspace for reading; root is '/configs' or '/workspace', path
   * relative. The size is known before any byte is read; the stream yields exactly that many bytes
   * (or fails) at the reader's pace. The caller must consume or destroy the stream. A file over
   * `maxBytes` (the caller refuses it) may come with its size alone: nothing of it is read.
   */
  openFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    maxBytes?: number,
  ): Promise<FileStream>;
  /** openFile read whole: for small files only (a file over `maxBytes`, default 64 MiB, is refused). */
  readFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    maxBytes?: number,
  ): Promise<Buffer>;
  /**
   * Lists entries under root/path ('' = the root itself) down to `depth` levels (1 = children only).
   * Paths in the answer are relative to the root. Symlinks that resolve outside the root are refused.
   * At most `maxEntries` (default LIST_MAX_ENTRIES) are returned; `truncated` says more exist. The
   * walk stops there, so a huge tree is never held in memory.
   */
  listFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    depth: number,
    maxEntries?: number,
  ): Promise<FileListing>;
  /**
   * Writes (creates or replaces) a file, creating parent directories. Binary safe. Streamed content
   * is read at its own pace; the file is replaced only once all `size` bytes arrived (a cut upload
   * leaves the old file, or nothing).
   */
  writeFile(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    path: string,
    content: FileContent,
  ): Promise<void>;
  /**
   * Writes files in order, each as writeFile does, over one session where the backend has sessions
   * (EC2: one SSH connection for the batch, not one per file). The first failure ends the batch;
   * files written before it stay.
   */
  writeFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    files: ReadonlyArray<{ path: string; content: Buffer }>,
  ): Promise<void>;
  /** Deletes a file (or an empty directory); missing → BackendError('not_found'). */
  deleteFile(workspaceId: string, generation: number, root: WorkspaceRoot, path: string): Promise<void>;
  /** Deletes entries in order, each as deleteFile does, one session for the batch; a missing one is skipped. */
  deleteFiles(
    workspaceId: string,
    generation: number,
    root: WorkspaceRoot,
    paths: readonly string[],
  ): Promise<void>;
  /**
   * Removes root/path and everything under it in one call, walked on the workspace side, never
   * following a symlink: a link (path itself or any entry below it) goes as a link, whatever it
   * points to; FIFOs, sockets and any depth go too. The parents are resolved as deleteFile does (one
   * leaving the root → invalid_path). Already gone, or a parent missing: succeeds.
   */
  removeTree(workspaceId: string, generation: number, root: WorkspaceRoot, path: string): Promise<void>;
  /**
   * Opens an interactive shell on a PTY inside the workspace (docker exec TTY / SSH shell).
   * `sessionId` (a uuid; default a new one) names the session for killTerminalSession.
   */
  openTerminal(
    workspaceId: string,
    generation: number,
    size: TerminalSize,
    sessionId?: string,
  ): Promise<TerminalSession>;
  /**
   * Ends what is left of a terminal session whose API process died without closing it (the
   * terminal reaper, src/api/terminal.ts): docker — the shell and every process started from it,
   * found by the session's marker (dockerd does not end an exec when its client goes); EC2 —
   * nothing (sshd hung the PTY up when the SSH connection dropped). A resource that is gone or not
   * running has no processes left: that succeeds. A failure to reach the resource throws.
   */
  killTerminalSession(workspaceId: string, generation: number, sessionId: string): Promise<void>;
  /** Liveness of the backend itself (daemon / API reachable), for /readyz. */
  ping(): Promise<void>;
}

export type WorkspaceRoot = '/configs' | '/workspace';

export interface FileEntry {
  /** Relative to the root, `/`-separated. */
  path: string;
  type: 'file' | 'dir';
  size: number;
  /** ISO-8601. */
  mtime: string;
}

/** Default cap of a listing (entries). */
export const LIST_MAX_ENTRIES = 5000;
/** Default cap of console output kept or served (its last bytes). */
export const CONSOLE_MAX_BYTES = 256 * 1024;

export interface FileListing {
  items: FileEntry[];
  /** More entries exist than were returned. */
  truncated: boolean;
}

/** A file's new content: bytes in memory, or a stream of exactly `size` bytes. */
export type FileContent =
  Buffer | { size: number; stream: NodeJS.ReadableStream & { destroy(error?: Error): unknown } };

/** An open file: its size (known up front) and a stream of exactly that many bytes. */
export interface FileStream {
  size: number;
  stream: NodeJS.ReadableStream & { destroy(error?: Error): unknown };
}

export interface TerminalSize {
  cols: number;
  rows: number;
}

/** A live PTY session; closing it must leave no exec / SSH session behind. */
export interface TerminalSession {
  /** Raw terminal output bytes. */
  readonly output: NodeJS.ReadableStream;
  /** Input bytes; false = the shell's input is backed up: wait for `drained()` before more. */
  write(data: Buffer): boolean;
  /** Resolves once the input accepts more (at once when it is not backed up, or closed). */
  drained(): Promise<void>;
  resize(size: TerminalSize): Promise<void>;
  /** Resolves when the shell has exited (or the session was closed); exit code when known. */
  readonly exited: Promise<number | null>;
  close(): Promise<void>;
}

/**
 * `not_running`: the generation's resource is not running (stopped, gone, still starting) while an
 * operation that needs it running (files, terminal) was asked for: the workspace is not online,
 * whatever the database said a moment ago (a dockerd restart, a stop from outside).
 * `no_space`: the workspace's filesystem is full (or over its quota): a write was refused and
 * nothing of it was left; retrying will not help until space is freed.
 */
export type BackendErrorCode =
  'not_configured' | 'not_found' | 'not_running' | 'transient' | 'permanent' | 'invalid_path' | 'no_space';

/** Typed backend error: activities map `permanent`/`not_configured` to non-retryable failures. */
export class BackendError extends Error {
  constructor(
    readonly code: BackendErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackendError';
  }
}

/** Awaits a delete; an entry that is already gone counts as deleted (the batch deletes' rule). */
export async function deletedIfGone(op: Promise<void>): Promise<void> {
  try {
    await op;
  } catch (err) {
    if (!(err instanceof BackendError && err.code === 'not_found')) throw err;
  }
}
