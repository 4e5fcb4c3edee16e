// A manifest entry's `preprocess` / `postprocess`, checked against the one definition of their
// fields (processing.json, which `secure-context models` and the Streamlit package read too) and
// returned with the defaults filled in. What each field means is media.js's business.

import SCHEMA from "./processing.json" with { type: "json" };

export { SCHEMA };

/**
 * @param {"preprocess" | "postprocess"} section
 * @param {any} spec   e.g. {kind: "image", size: [224, 224]}
 * @returns {Record<string, any>} a copy with every defaulted field present
 * @throws {Error} naming the field and what is wrong with it
 */
export function checkProcessing(section, spec) {
  const kinds = SCHEMA[section];
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw new Error(`${section} must be an object with a "kind"`);
  const table = Object.hasOwn(kinds, spec.kind) ? kinds[spec.kind] : null;
  if (!table) throw new Error(`${section}.kind ${JSON.stringify(spec.kind)}: use ${Object.keys(kinds).join(", ")}`);
  const out = { kind: spec.kind };
  for (const key of Object.keys(spec)) {
    if (key !== "kind" && !Object.hasOwn(table, key)) {
      throw new Error(`${section}.${key}: not a field of ${spec.kind} (${Object.keys(table).join(", ")})`);
    }
  }
  // Enums first: a `numbers` field's length depends on one.
  const order = Object.keys(table).sort((a, b) => (table[a].type === "enum" ? 0 : 1) - (table[b].type === "enum" ? 0 : 1));
  for (const key of order) {
    const f = table[key];
    const where = `${section}.${key}`;
    if (spec[key] === undefined) {
      if (f.required) throw new Error(`${where} is required for ${spec.kind}`);
      if (f.default !== undefined) out[key] = field(where, f, f.default, out);
      continue;
    }
    out[key] = field(where, f, spec[key], out);
  }
  return out;
}

function field(where, f, v, sofar) {
  const inRange = (x) => (f.min === undefined || x >= f.min) && (f.max === undefined || x <= f.max);
  const range = f.min !== undefined || f.max !== undefined ? ` in [${f.min ?? "-inf"}, ${f.max ?? "inf"}]` : "";
  switch (f.type) {
    case "string":
      if (typeof v !== "string" || v.length === 0 || v.length > 256) throw new Error(`${where} must be a name of 1..256 characters`);
      return v;
    case "bool":
      if (typeof v !== "boolean") throw new Error(`${where} must be true or false`);
      return v;
    case "int":
      if (!Number.isInteger(v) || !inRange(v)) throw new Error(`${where} must be an integer${range}`);
      return v;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v) || !inRange(v)) throw new Error(`${where} must be a number${range}`);
      return v;
    case "enum":
      if (!f.values.includes(v)) throw new Error(`${where} ${JSON.stringify(v)}: use ${f.values.join(", ")}`);
      return v;
    case "int-pair":
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && inRange(x))) {
        throw new Error(`${where} must be [a, b], integers${range}`);
      }
      return v.slice();
    case "numbers": {
      const n = f.length_from.lengths[sofar[f.length_from.field]];
      const a = typeof v === "number" ? Array(n).fill(v) : v;
      if (!Array.isArray(a) || a.length !== n || !a.every((x) => typeof x === "number" && Number.isFinite(x))) {
        throw new Error(`${where} must be a number or ${n} numbers (one per ${f.length_from.field} channel)`);
      }
      if (f.nonzero && a.some((x) => x === 0)) throw new Error(`${where} must not be 0`);
      return a;
    }
    default:
      throw new Error(`${where}: processing.json has no field type ${f.type}`);
  }
}
