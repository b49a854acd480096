// Reads an Arrow IPC stream (file path or "-" for stdin) with apache-arrow, an implementation
// duckgate does not share code with, and prints {"schema":[{name,type}],"rows":[...]} as JSON.
// BigInts print as strings so 64-bit values survive.
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';

const src = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0;
const table = tableFromIPC(readFileSync(src));
const out = {
  schema: table.schema.fields.map((f) => ({ name: f.name, type: String(f.type), nullable: f.nullable })),
  batches: table.batches.length,
  num_rows: table.numRows,
  rows: table.toArray().map((r) => r.toJSON()),
};
process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
