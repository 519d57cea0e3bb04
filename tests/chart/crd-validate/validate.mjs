// Reads a JSON list of Kubernetes objects on stdin and validates each
// monitoring.coreos.com/v1 object with the models generated from
// prometheus-operator's Go API types (types, required fields, patterns).
// Prints one JSON line per object: {"kind", "name", "errors": [...]}.
// Exits 2 on a kind it has no model for, so an unchecked object never passes.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const MODELS = { ServiceMonitor, PrometheusRule, PodMonitor };

const objects = JSON.parse(readFileSync(0, "utf8"));
let unknown = false;
for (const obj of objects) {
  const Model = MODELS[obj.kind];
  const name = obj.metadata?.name ?? "";
  if (obj.apiVersion !== "monitoring.coreos.com/v1" || !Model) {
    console.log(JSON.stringify({ kind: obj.kind, name, errors: [`no model for ${obj.apiVersion} ${obj.kind}`] }));
    unknown = true;
    continue;
  }
  let errors = [];
  try {
    new Model(obj).validate();
  } catch (error) {
    errors = String(error.message).split("\n").filter(Boolean);
  }
  console.log(JSON.stringify({ kind: obj.kind, name, errors }));
}
process.exit(unknown ? 2 : 0);
