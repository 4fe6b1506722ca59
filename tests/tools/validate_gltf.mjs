// Validate glb files with the Khronos glTF validator; print one JSON line per file.
// Usage: node tests/tools/validate_gltf.mjs FILE.glb [...]
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const validator = require("gltf-validator");

const results = [];
for (const file of process.argv.slice(2)) {
  const data = await readFile(file);
  const report = await validator.validateBytes(new Uint8Array(data), {
    uri: file,
    maxIssues: 50,
  });
  results.push({
    file,
    errors: report.issues.numErrors,
    warnings: report.issues.numWarnings,
    infos: report.issues.numInfos,
    messages: report.issues.messages.map((m) => `${m.severity} ${m.code} ${m.pointer ?? ""}: ${m.message}`),
  });
}
process.stdout.write(JSON.stringify(results) + "\n");
