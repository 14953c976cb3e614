// Validates Kubernetes objects against the official OpenAPI schemas, as
// compiled into the npm packages kubernetes-models (core and built-in API
// groups) and @kubernetes-models/keda (KEDA's CRDs).
//
//   node validate_k8s.mjs NODE_MODULES < objects.json
//
// stdin: a JSON array of objects (the test renders the Kustomize overlays
// with kubectl and converts the YAML).  stdout: one line per object,
// "ok KIND NAME" or "FAIL KIND NAME: why"; exit status 1 when any fails.
// A kind with no model is a failure: an object nothing checked must not
// pass as checked.  (The schemas check types, required fields and formats;
// like the API server's non-strict mode they accept unknown field names.)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
if (!modules) {
  console.error("usage: node validate_k8s.mjs NODE_MODULES < objects.json");
  process.exit(2);
}

// apiVersion "apps/v1" -> kubernetes-models/apps/v1; "v1" -> kubernetes-models/v1;
// groups of CRDs come from their own package.
const CRD_PACKAGES = { "keda.sh": "@kubernetes-models/keda" };

function modelFile(apiVersion) {
  const slash = apiVersion.indexOf("/");
  if (slash < 0) return join(modules, "kubernetes-models", apiVersion, "index.js");
  const group = apiVersion.slice(0, slash);
  const pkg = CRD_PACKAGES[group] ?? "kubernetes-models";
  return join(modules, pkg, apiVersion, "index.js");
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const kind = obj?.kind ?? "(no kind)";
  const name = obj?.metadata?.name ?? "(no name)";
  let why = null;
  try {
    if (typeof obj?.apiVersion !== "string" || typeof obj?.kind !== "string") throw new Error("no apiVersion or kind");
    let mod;
    try {
      mod = await import(pathToFileURL(modelFile(obj.apiVersion)).href);
    } catch {
      throw new Error(`no model for apiVersion ${obj.apiVersion}`);
    }
    const Model = mod[obj.kind];
    if (typeof Model !== "function" || Model.kind !== obj.kind) throw new Error(`no model for ${obj.apiVersion} ${obj.kind}`);
    new Model(obj).validate();
  } catch (e) {
    why = String(e.message ?? e).replace(/\s+/g, " ");
  }
  if (why) failed++;
  console.log(why ? `FAIL ${kind} ${name}: ${why}` : `ok ${kind} ${name}`);
}
process.exit(failed ? 1 : 0);
