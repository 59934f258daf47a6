import type { FastifyInstance } from 'fastify';
import type { UploadEndpoint } from '../../backends/backend.js';
import type { InferencePipeline } from '../../pipeline/pipeline.js';

const ROUTES: Array<{ url: string; endpoint: UploadEndpoint }> = [
  { url: '/audio/transcriptions', endpoint: 'audio.transcriptions' },
  { url: '/audio/translations', endpoint: 'audio.translations' },
];

/**
 * Multipart uploads (audio). Fastify must not parse these: the body stays a stream and the
 * pipeline forwards it as it arrives. Registered in its own scope so JSON routes keep
 * rejecting multipart with a 415.
 */
export async function uploadRoutes(
  app: FastifyInstance,
  options: { pipeline: InferencePipeline },
): Promise<void> {
  app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => done(null));
  for (const route of ROUTES) {
    app.post(route.url, (request, reply) => options.pipeline.upload(request, reply, route.endpoint));
  }
}
