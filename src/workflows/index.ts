// The one workflow entry module the worker bundles.
export { workspaceWorkflow } from './workspace.js';
export { orphanSweepWorkflow, orgDeleteWorkflow } from './sweeps.js';
