// The one workflow entry module the worker bundles.
export { workspaceWorkflow } from './workspace/workflow.js';
export {
  budgetSweepWorkflow,
  healthSweepWorkflow,
  orphanSweepWorkflow,
  orgDeleteWorkflow,
} from './sweeps.js';
export { pluginWorkflow } from './plugin.js';
export { scheduledMessageWorkflow } from './schedules.js';
