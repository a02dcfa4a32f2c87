// The one workflow entry module the worker bundles.
export { workspaceWorkflow } from './workspace/workflow.js';
export { healthSweepWorkflow, orphanSweepWorkflow, orgDeleteWorkflow } from './sweeps.js';
export { scheduledMessageWorkflow } from './schedules.js';
