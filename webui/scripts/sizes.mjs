#!/usr/bin/env node
// After `vite build`: the gzipped size of every JavaScript and CSS file, and of what the login
// route loads (the entry and the chunks it imports statically), checked against its budget.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const LOGIN_BUDGET_KB = 300;
const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "dist");
const manifest = JSON.parse(readFileSync(path.join(dist, ".vite", "manifest.json"), "utf8"));

const gz = (file) => gzipSync(readFileSync(path.join(dist, file)), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

// The login route: the entry (index.html's script) and its static imports, transitively.
const entryKey = Object.keys(manifest).find((k) => manifest[k].isEntry);
const login = new Set();
const visit = (key) => {
  const chunk = manifest[key];
  if (!chunk || login.has(chunk.file)) return;
  login.add(chunk.file);
  for (const css of chunk.css ?? []) login.add(css);
  for (const dep of chunk.imports ?? []) visit(dep);
};
visit(entryKey);

const files = new Map();
for (const chunk of Object.values(manifest)) {
  for (const f of [chunk.file, ...(chunk.css ?? [])]) if (/\.(js|css)$/.test(f)) files.set(f, gz(f));
}
const rows = [...files.entries()].sort((a, b) => b[1] - a[1]);
console.log("\ngzipped sizes (level 9):");
for (const [file, size] of rows) console.log(`  ${kb(size).padStart(10)}  ${file}${login.has(file) ? "  [login route]" : ""}`);
const loginJs = [...login].filter((f) => f.endsWith(".js")).reduce((n, f) => n + (files.get(f) ?? 0), 0);
const loginCss = [...login].filter((f) => f.endsWith(".css")).reduce((n, f) => n + (files.get(f) ?? 0), 0);
const totalJs = rows.filter(([f]) => f.endsWith(".js")).reduce((n, [, s]) => n + s, 0);
console.log(`\nlogin route: ${kb(loginJs)} JS + ${kb(loginCss)} CSS (budget ${LOGIN_BUDGET_KB} KB of JS); all JS: ${kb(totalJs)}`);
if (loginJs > LOGIN_BUDGET_KB * 1024) {
  console.error(`the login route's JavaScript is over its ${LOGIN_BUDGET_KB} KB budget`);
  process.exit(1);
}
