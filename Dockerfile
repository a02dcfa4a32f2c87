# workspace-orchestrator service image: the API and the Temporal worker (same image, different
# command). No registry pulls: it builds on the local base image (Dockerfile.base, itself FROM
# scratch: Node 24 + its shared libraries + production node_modules), and is built by
#
#   ./dev image service        (= npx tsx src/cli/build-images.ts service)
#
# which assembles the base context and this one (.data/build/service/: app/ = package.json,
# `tsc -p tsconfig.build.json` output with the SQL migrations and the prebuilt workflow bundle in
# dist/workflow-bundles, templates/, plugins/) and tags the
# results by content hash: wo-service-base:<hash>, wo-service:<hash> (also in .data/service-image).
#
#   API:     docker run ... wo-service:<hash>                          (CMD below)
#   worker:  docker run ... wo-service:<hash> node dist/worker/main.js
ARG BASE
FROM ${BASE}
COPY app/ /app/

ENV PATH=/usr/bin NODE_ENV=production DATA_DIR=/var/lib/wo PORT=8080
WORKDIR /app
# Not root. Talking to dockerd needs the socket's group: `--group-add <gid of docker.sock>`
# (compose: group_add).
USER 10001:10001
EXPOSE 8080
LABEL wo.image=service

# No shell in the image: the probe is a node script. The API must answer /healthz; a worker (no
# HTTP server) is healthy while it can reach Temporal.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["node", "dist/cli/healthcheck.js"]

CMD ["node", "dist/api/main.js"]
