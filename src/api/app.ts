import express, { type Express } from 'express';
import { authenticate } from './auth.js';
import type { ApiDeps } from './deps.js';
import { errorHandler, markNonJsonBody, notFoundRoute } from './errors.js';
import { failedAuthLimitOf, keyRateLimitOf } from './limits.js';
import { a2aRouter } from './routes/a2a.js';
import { activityRouter } from './routes/activity.js';
import { budgetRouter } from './routes/budget.js';
import { consoleRouter } from './routes/console.js';
import { filesRouter } from './routes/files.js';
import { mcpRouter } from './routes/mcp.js';
import { memoriesRouter } from './routes/memories.js';
import { orgsRouter } from './routes/orgs.js';
import { pluginCatalogRouter, workspacePluginsRouter } from './routes/plugins.js';
import { opsRouter } from './routes/ops.js';
import { registryRouter } from './routes/registry.js';
import { requestContext } from './request-context.js';
import { schedulesRouter } from './routes/schedules.js';
import { orgSecretsRouter, secretsRouter } from './routes/secrets.js';
import { sweepsRouter } from './routes/sweeps.js';
import { templatesRouter } from './routes/templates.js';
import { workspacesRouter } from './routes/workspaces.js';
import { beginProxyBarrier } from './workspace-param.js';

export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Whose address `req.ip` is (the failed-authentication limit is per client): the TCP peer, unless
  // TRUST_PROXY names the proxies in front.
  app.set('trust proxy', deps.settings.trustProxy ?? false);
  // Before anything else, so that its round trip overlaps the middleware below.
  if (deps.proxyViews) app.use(beginProxyBarrier(deps.proxyViews));
  app.use(requestContext(deps.log));
  const v1 = express.Router();
  v1.use(
    authenticate(
      deps.db,
      deps.settings.adminToken,
      failedAuthLimitOf(deps, deps.settings.rateLimitPerMinute),
    ),
  );
  v1.use(keyRateLimitOf(deps, deps.settings.rateLimitPerMinute).middleware);
  // Raw-body and streaming routes parse their own bodies: mounted before the JSON parser.
  // The A2A proxy first: the hottest route walks no other router's layers.
  v1.use('/workspaces', a2aRouter(deps));
  v1.use('/workspaces', filesRouter(deps));
  // Plugin uploads are larger than the JSON limit below: the route parses its own body.
  v1.use('/workspaces', workspacePluginsRouter(deps));
  v1.use(express.json({ limit: '256kb' }));
  v1.use(markNonJsonBody);
  v1.use('/orgs', orgsRouter(deps));
  v1.use('/orgs', orgSecretsRouter(deps));
  v1.use('/admin/sweeps', sweepsRouter(deps));
  v1.use('/templates', templatesRouter(deps));
  v1.use('/plugins', pluginCatalogRouter(deps));
  v1.use('/workspaces', activityRouter(deps));
  v1.use('/workspaces', secretsRouter(deps));
  v1.use('/workspaces', memoriesRouter(deps));
  v1.use('/workspaces', budgetRouter(deps));
  v1.use('/workspaces', schedulesRouter(deps));
  v1.use('/workspaces', workspacesRouter(deps));
  v1.use('/registry', registryRouter(deps));
  v1.use('/mcp', mcpRouter(deps));
  // The API first: a /v1 call (the A2A proxy's above all) walks none of the ops and docs routes,
  // none of which is under /v1.
  app.use('/v1', v1);
  app.use(opsRouter(deps));
  app.use('/ui', consoleRouter(deps));
  app.use(notFoundRoute);
  app.use(errorHandler(deps.log));
  return app;
}
