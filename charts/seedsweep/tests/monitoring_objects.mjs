// Validates the chart's Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) against the
// Prometheus Operator's CRD schemas as @kubernetes-models/prometheus-operator compiles them (scripts/install-tools.sh
// installs it into .tools/node):
//   node monitoring_objects.mjs TOOLS_NODE_DIR < objects.json      (a JSON array of rendered objects)
// It checks types, enums and required fields; unlike kubernetes-validate --strict it does not reject unknown fields.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const index = resolve(process.argv[2], "node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
const models = await import(pathToFileURL(index).href);
const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const Model = models[obj.kind];
  if (!Model || obj.apiVersion !== "monitoring.coreos.com/v1") {
    console.log(`no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`valid: ${obj.kind}/${obj.metadata.name}`);
  } catch (e) {
    console.log(`invalid: ${obj.kind}/${obj.metadata.name}: ${e.message}`);
    failed++;
  }
}
if (objects.length === 0) {
  console.log("no objects");
  failed++;
}
process.exit(failed ? 1 : 0);
