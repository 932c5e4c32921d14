// Compares `veil ldp aggregate`'s estimates with what the end-to-end test sent:
//   node check.mjs RESULT.json ESTIMATES.csv
// Every estimate must be within 3.72 standard errors of the truth (a family-wise 99.9%
// interval over the five countries, so a correct run fails one time in a thousand); how
// many of the stated 95% intervals hold the truth is printed as well.
import { readFileSync } from "node:fs";

const [resultPath, estimatesPath] = process.argv.slice(2);
const result = JSON.parse(readFileSync(resultPath, "utf8"));
const rows = readFileSync(estimatesPath, "utf8").trim().split("\n");
const header = rows[0].split(",");
const column = (name) => header.indexOf(name);
let covered = 0;
let failures = [];
for (const line of rows.slice(1)) {
  const cells = line.split(",");
  const value = cells[column("value")];
  const estimate = Number(cells[column("estimate")]);
  const error = Number(cells[column("std_error")]);
  const low = Number(cells[column("ci_low")]);
  const high = Number(cells[column("ci_high")]);
  const truth = result.truth[value];
  if (truth === undefined) {
    failures.push(`unexpected value ${value}`);
    continue;
  }
  if (low <= truth && truth <= high) covered += 1;
  const z = Math.abs(estimate - truth) / error;
  console.log(`${value}: sent ${truth}, estimated ${estimate.toFixed(1)} ± ${error.toFixed(1)} (95% interval ${low.toFixed(1)} to ${high.toFixed(1)}; ${z.toFixed(2)} standard errors off)`);
  if (!(z <= 3.72)) failures.push(`${value}: ${z.toFixed(2)} standard errors from the truth`);
}
console.log(`${covered} of ${rows.length - 1} stated 95% intervals hold the truth`);
if (rows.length - 1 !== Object.keys(result.truth).length) failures.push("not one estimate per country");
if (failures.length > 0) {
  console.error(`estimates do not match what was sent: ${failures.join("; ")}`);
  process.exit(1);
}
