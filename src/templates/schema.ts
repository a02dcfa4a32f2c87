/**
 * What a template may say, defined once: the `TEMPLATES` setting and the catalog's
 * `templates/<name>/template.yaml` share the spec, so both reach the same create path.
 */
import { z } from 'zod';
import { jsonProblem } from '../api/schemas.js';

export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const templateName = z.string().regex(TEMPLATE_NAME, 'template names are lower-case [a-z0-9-]');

const PLUGIN_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** The fields a template sets for its workspaces (the `TEMPLATES` setting's value per name). */
export const templateSpecSchema = z.object({
  runtime: z.string().optional(),
  config: z.record(z.string(), z.unknown()).default({}),
  ec2: z
    .object({
      imageId: z.string().optional(),
      instanceType: z.string().optional(),
      subnetId: z.string().optional(),
      securityGroupIds: z.array(z.string()).optional(),
    })
    .optional(),
  /** Docker limits of its workspaces; unset fields take the defaults (2048 MB, 1 CPU, 1024 pids). */
  limits: z
    .object({
      memoryMb: z.number().int().min(64).max(1_048_576).optional(),
      cpus: z.number().min(0.01).max(256).optional(),
      pids: z.number().int().min(16).max(1_000_000).optional(),
    })
    .strict()
    .optional(),
  /** Whether its workspaces restart by themselves when offline or degraded (default always). */
  restartPolicy: z.enum(['always', 'never']).optional(),
});
export type TemplateSpec = z.infer<typeof templateSpecSchema>;

/**
 * `template.yaml`: the spec plus what only the catalog carries. Strict, so a misspelt field
 * (`limit:`) fails at start instead of being silently ignored.
 */
export const templateFileSchema = templateSpecSchema
  .extend({
    runtime: z.string().min(1).max(64),
    // What a create body's config may hold (jsonb-storable, bounded): YAML can say `.nan`.
    config: templateSpecSchema.shape.config.superRefine((c, ctx) => {
      const p =
        jsonProblem(c) ?? (JSON.stringify(c).length > 64 * 1024 ? 'config must be at most 64 KiB' : null);
      if (p) ctx.addIssue({ code: 'custom', message: p });
    }),
    description: z.string().min(1).max(500).optional(),
    ec2: templateSpecSchema.shape.ec2.unwrap().strict().optional(),
    /**
     * Catalog plugins (`name` or `local://name`) its workspaces get by default. Validated and
     * stored here; they are installed once the plugin workflow exists (issue 9, part 3).
     */
    plugins: z
      .array(
        z
          .string()
          .transform((s) => s.replace(/^local:\/\//, ''))
          .pipe(z.string().regex(PLUGIN_NAME, 'plugins are catalog names: lower-case [a-z0-9-]')),
      )
      .max(50)
      .refine((list) => new Set(list).size === list.length, 'plugins must not repeat a name')
      .default([]),
  })
  .strict();
export type TemplateFileSpec = z.infer<typeof templateFileSchema>;
