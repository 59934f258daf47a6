import { z } from 'zod';
import { refreshedModelsSchema } from '../backends/local-servers/refresh-schema.js';
import {
  auditEventSchema,
  cachePurgeSchema,
  cacheStatsSchema,
  createKeySchema,
  createTeamSchema,
  deploymentListSchema,
  errorObjectSchema,
  issuedKeySchema,
  keyObjectSchema,
  listOf,
  requestLogEntrySchema,
  rotateKeySchema,
  teamObjectSchema,
  updateKeySchema,
  updateTeamSchema,
  usageReportSchema,
} from '../schemas/admin.js';

/**
 * `/admin/openapi.json`, generated from the very zod schemas the handlers validate with, so the
 * document cannot drift from what the API accepts.
 */
type Schema = Record<string, unknown>;

const json = (schema: z.ZodType): Schema =>
  z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Schema;
const body = (schema: z.ZodType) => ({
  required: true,
  content: { 'application/json': { schema: json(schema) } },
});
const ok = (description: string, schema: z.ZodType, status = '200') => ({
  [status]: { description, content: { 'application/json': { schema: json(schema) } } },
});
const errorResponses = () => ({
  '400': {
    description: 'Invalid input',
    content: { 'application/json': { schema: json(errorObjectSchema) } },
  },
  '401': {
    description: 'Missing or wrong admin key',
    content: { 'application/json': { schema: json(errorObjectSchema) } },
  },
  '404': { description: 'Unknown id', content: { 'application/json': { schema: json(errorObjectSchema) } } },
  '429': {
    description:
      'Too many failed admin authentications from this address (`admin.failedAttempts`); see `retry-after`',
    content: { 'application/json': { schema: json(errorObjectSchema) } },
  },
});
const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }];
const pageParams = [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
  { name: 'after', in: 'query', schema: { type: 'string' }, description: "The previous page's last_id" },
];

export function adminOpenApiDocument(version: string): Schema {
  const ERRORS = errorResponses();
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tollgate admin API',
      version,
      description:
        'Teams, API keys and the audit log. Authenticate with `Authorization: Bearer <admin key>`.',
    },
    servers: [{ url: '/admin' }],
    security: [{ adminKey: [] }],
    components: { securitySchemes: { adminKey: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/teams': {
        post: {
          operationId: 'createTeam',
          requestBody: body(createTeamSchema),
          responses: { ...ok('Created', teamObjectSchema, '201'), ...ERRORS },
        },
        get: {
          operationId: 'listTeams',
          parameters: pageParams,
          responses: { ...ok('A page of teams', listOf(teamObjectSchema)), ...ERRORS },
        },
      },
      '/teams/{id}': {
        get: {
          operationId: 'getTeam',
          parameters: idParam,
          responses: { ...ok('The team', teamObjectSchema), ...ERRORS },
        },
        patch: {
          operationId: 'updateTeam',
          parameters: idParam,
          requestBody: body(updateTeamSchema),
          responses: { ...ok('The team', teamObjectSchema), ...ERRORS },
        },
        delete: {
          operationId: 'deleteTeam',
          parameters: [
            ...idParam,
            {
              name: 'force',
              in: 'query',
              schema: { type: 'boolean' },
              description: 'Revoke active keys first',
            },
          ],
          responses: {
            ...ok(
              'Deleted',
              z.object({ id: z.string(), object: z.literal('team'), deleted: z.literal(true) }),
            ),
            '409': {
              description: 'The team has active keys',
              content: { 'application/json': { schema: json(errorObjectSchema) } },
            },
            ...ERRORS,
          },
        },
      },
      '/keys': {
        post: {
          operationId: 'createKey',
          requestBody: body(createKeySchema),
          responses: { ...ok('Created; `key` is shown only here', issuedKeySchema, '201'), ...ERRORS },
        },
        get: {
          operationId: 'listKeys',
          parameters: [...pageParams, { name: 'team_id', in: 'query', schema: { type: 'string' } }],
          responses: { ...ok('A page of keys', listOf(keyObjectSchema)), ...ERRORS },
        },
      },
      '/keys/{id}': {
        get: {
          operationId: 'getKey',
          parameters: idParam,
          responses: { ...ok('The key', keyObjectSchema), ...ERRORS },
        },
        patch: {
          operationId: 'updateKey',
          parameters: idParam,
          requestBody: body(updateKeySchema),
          responses: { ...ok('The key', keyObjectSchema), ...ERRORS },
        },
        delete: {
          operationId: 'revokeKey',
          parameters: idParam,
          responses: { ...ok('The key, revoked', keyObjectSchema), ...ERRORS },
        },
      },
      '/keys/{id}/rotate': {
        post: {
          operationId: 'rotateKey',
          parameters: idParam,
          requestBody: { ...body(rotateKeySchema), required: false },
          responses: { ...ok('A new secret; `key` is shown only here', issuedKeySchema), ...ERRORS },
        },
      },
      '/usage': {
        get: {
          operationId: 'getUsage',
          parameters: [
            { name: 'team_id', in: 'query', schema: { type: 'string' } },
            { name: 'key_id', in: 'query', schema: { type: 'string' } },
            { name: 'model', in: 'query', schema: { type: 'string' } },
            {
              name: 'from',
              in: 'query',
              schema: { type: 'string', format: 'date' },
              description: 'UTC day; default 29 days before `to`',
            },
            {
              name: 'to',
              in: 'query',
              schema: { type: 'string', format: 'date' },
              description: 'UTC day; default today',
            },
            {
              name: 'group_by',
              in: 'query',
              schema: { type: 'string', enum: ['day', 'model', 'key', 'team'], default: 'day' },
            },
          ],
          responses: { ...ok('Sums per group', usageReportSchema), ...ERRORS },
        },
      },
      '/requests': {
        get: {
          operationId: 'listRequests',
          parameters: [
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            },
            {
              name: 'before',
              in: 'query',
              schema: { type: 'string' },
              description: "The previous page's last_id (newest first)",
            },
          ],
          responses: { ...ok('The request log, newest first', listOf(requestLogEntrySchema)), ...ERRORS },
        },
      },
      '/metrics': {
        get: {
          operationId: 'getMetrics',
          responses: {
            '200': {
              description:
                'Prometheus text format: requests, cache results and deployment attempts of this instance; cache size and circuit states (shared store)',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
            ...ERRORS,
          },
        },
      },
      '/deployments': {
        get: {
          operationId: 'listDeployments',
          responses: {
            ...ok(
              "Every deployment of every configured model: its circuit (shared through the store), and this instance's in-flight count and latency",
              deploymentListSchema,
            ),
            ...ERRORS,
          },
        },
      },
      '/backends/{name}/refresh': {
        post: {
          operationId: 'refreshBackendModels',
          description:
            "Reads a local server's model list now (ollama, vllm, llamacpp-server, lmstudio backends); a server found down is skipped by routing until a probe finds it up",
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            ...ok('The models the server lists now, and its availability', refreshedModelsSchema),
            '503': {
              description: 'The server did not answer; see `retry-after` for the next probe',
              content: { 'application/json': { schema: json(errorObjectSchema) } },
            },
            ...ERRORS,
          },
        },
      },
      '/cache': {
        get: {
          operationId: 'getCacheStats',
          parameters: [
            { name: 'team_id', in: 'query', schema: { type: 'string' } },
            { name: 'key_id', in: 'query', schema: { type: 'string' } },
            { name: 'scope', in: 'query', schema: { type: 'string', enum: ['global'] } },
          ],
          responses: {
            ...ok('Live entries and bytes per cache scope (hits and misses: /usage)', cacheStatsSchema),
            ...ERRORS,
          },
        },
        delete: {
          operationId: 'purgeCache',
          parameters: [
            { name: 'team_id', in: 'query', schema: { type: 'string' } },
            { name: 'key_id', in: 'query', schema: { type: 'string' } },
            { name: 'scope', in: 'query', schema: { type: 'string', enum: ['global'] } },
            { name: 'model', in: 'query', schema: { type: 'string' } },
            {
              name: 'all',
              in: 'query',
              schema: { type: 'string', enum: ['true'] },
              description: 'Required to purge every scope (with or without model)',
            },
          ],
          responses: { ...ok('How many entries were removed', cachePurgeSchema), ...ERRORS },
        },
      },
      '/audit': {
        get: {
          operationId: 'listAuditEvents',
          parameters: pageParams,
          responses: { ...ok('A page of audit events', listOf(auditEventSchema)), ...ERRORS },
        },
      },
    },
  };
}

let served: { version: string; json: string } | undefined;

/**
 * The document as served, built on its first request and kept: converting the schemas took ~35 ms
 * and ~4 MB of RSS at every boot, for a route few instances are ever asked.
 */
export function adminOpenApiJson(version: string): string {
  if (served?.version !== version) served = { version, json: JSON.stringify(adminOpenApiDocument(version)) };
  return served.json;
}
