// Validates Kubernetes objects (a JSON array on standard input) against the
// API schemas of the npm package kubernetes-models; prints one line per object
// and exits 1 when any fails. Run by tests/deploy_files_test.py.
const input = require("fs").readFileSync(0, "utf8");
const objects = JSON.parse(input);
let failures = 0;
for (const object of objects) {
  const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : ["", object.apiVersion];
  const folder = group === "" ? version : `${group}/${version}`;
  let Model;
  try {
    Model = require(`kubernetes-models/${folder}/${object.kind}`)[object.kind];
  } catch (e) {
    console.log(`${object.kind} ${object.metadata.name}: no schema for ${object.apiVersion}`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${object.kind} ${object.metadata.name}`);
  } catch (e) {
    console.log(`${object.kind} ${object.metadata.name}: ${e.message}`);
    failures++;
  }
}
process.exit(failures ? 1 : 0);
