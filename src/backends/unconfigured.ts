import { BackendError, type BackendKind, type WorkspaceBackend } from './backend.js';

/**
 * The zero-value backend: every method answers a typed `not_configured` error instead of crashing,
 * so a service without (say) EC2 credentials still runs and says clearly why a call failed.
 */
export class UnconfiguredBackend implements WorkspaceBackend {
  constructor(readonly kind: BackendKind) {}

  private fail(): never {
    throw new BackendError('not_configured', `no ${this.kind} backend configured`);
  }

  start = async (): Promise<never> => this.fail();
  stop = async (): Promise<never> => this.fail();
  remove = async (): Promise<never> => this.fail();
  status = async (): Promise<never> => this.fail();
  describe = async (): Promise<never> => this.fail();
  listManaged = async (): Promise<never> => this.fail();
  listManagedVolumes = async (): Promise<never> => this.fail();
  listManagedNetworks = async (): Promise<never> => this.fail();
  removeUnusedOrgNetwork = async (): Promise<never> => this.fail();
  removeOrg = async (): Promise<never> => this.fail();
  bootLog = async (): Promise<never> => this.fail();
  openFile = async (): Promise<never> => this.fail();
  readFile = async (): Promise<never> => this.fail();
  listFiles = async (): Promise<never> => this.fail();
  writeFile = async (): Promise<never> => this.fail();
  deleteFile = async (): Promise<never> => this.fail();
  writeFiles = async (): Promise<never> => this.fail();
  deleteFiles = async (): Promise<never> => this.fail();
  removeTree = async (): Promise<never> => this.fail();
  openTerminal = async (): Promise<never> => this.fail();
  killTerminalSession = async (): Promise<never> => this.fail();
  ping = async (): Promise<never> => this.fail();
}
