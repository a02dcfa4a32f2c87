/**
 * The web console (`/ui`): static pages (src/api/ui) and xterm.js from its installed packages, all
 * served from this origin under a strict Content-Security-Policy, plus one small JSON settings
 * document for the page. The pages call the /v1 API with the org key the user logs in with; nothing
 * here is trusted with it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler, type Router } from 'express';
import { workspaceWorkflowId } from '../../workflows/messages.js';
import { authenticate } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { failedAuthLimitOf, keyRateLimitOf } from '../limits.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The pages: next to this module's folder from source; a build without them reads them from src. */
export function consoleAssetsDir(): string {
  const candidates = [path.join(here, '../ui'), path.join(here, '../../../src/api/ui')];
  return candidates.find((d) => existsSync(path.join(d, 'index.html'))) ?? candidates[0]!;
}

/** An installed package's folder, resolved as Node resolves it (never a copy, never a CDN). */
function packageDir(name: string): string {
  return path.dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
}

/**
 * Scripts and connections only to this origin (`'self'` covers ws:/wss: of the same host). Styles
 * allow inline because xterm.js writes its theme into a <style> element it creates; no script can
 * be injected that way.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': CONSOLE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cache-Control': 'no-cache',
  });
  next();
};

export function consoleRouter(deps: ApiDeps): Router {
  const r = express.Router();
  r.use(securityHeaders);

  // What the page needs to know about this deployment; behind the same auth and limits as /v1.
  const { adminToken, rateLimitPerMinute } = deps.settings;
  // The same counts as /v1's (one per API): a key or an address gains nothing by coming this way.
  const guard = [
    authenticate(deps.db, adminToken, failedAuthLimitOf(deps, rateLimitPerMinute)),
    keyRateLimitOf(deps, rateLimitPerMinute).middleware,
  ];
  r.get('/config.json', ...guard, (_req, res) => {
    const ui = deps.settings.temporalUi;
    res.json({
      temporalUiUrl: ui?.url ?? null,
      temporalNamespace: ui?.namespace ?? null,
      // The page fills in a workspace id: the format stays defined in one place.
      workflowIdTemplate: workspaceWorkflowId('{id}'),
    });
  });

  // Only the packages' built files, not their whole folders.
  const statics = { index: false, redirect: false } as const;
  const xterm = packageDir('@xterm/xterm');
  r.use('/vendor/xterm/lib', express.static(path.join(xterm, 'lib'), statics));
  r.use('/vendor/xterm/css', express.static(path.join(xterm, 'css'), statics));
  r.use('/vendor/addon-fit/lib', express.static(path.join(packageDir('@xterm/addon-fit'), 'lib'), statics));
  // The pages use absolute /ui/… URLs, so /ui and /ui/ both serve the index (the static handler
  // alone serves a folder's index only with its trailing slash).
  r.get('/', (_req, res) => res.sendFile(path.join(consoleAssetsDir(), 'index.html')));
  r.use(express.static(consoleAssetsDir(), { index: 'index.html', redirect: false }));
  return r;
}
