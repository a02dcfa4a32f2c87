/** The template catalog as clients see it: names, runtimes, descriptions (never file contents). */
import { Router } from 'express';
import { orgScope, principalOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';

export function templatesRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get('/', (_req, res) => {
    // Whoever may create workspaces (admin, org keys) may list what they can create from.
    orgScope(principalOf(res));
    const items = Object.entries(deps.settings.templates)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, t]) => ({
        name,
        // A TEMPLATES entry may name no runtime: its workspaces get the default one.
        runtime: t.runtime ?? deps.settings.defaultRuntime,
        ...(t.description ? { description: t.description } : {}),
        plugins: t.plugins ?? [],
      }));
    res.json({ items });
  });
  return r;
}
