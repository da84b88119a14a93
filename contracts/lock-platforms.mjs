#!/usr/bin/env node
// The npm registry reachable from the project's machines serves only the linux-x64 build
// of anvil, so `npm install` leaves the other platforms' optional packages of
// @foundry-rs/anvil out of package-lock.json, and `npm ci` then refuses the lock as out of
// sync. This adds them back as optional, platform-restricted entries (npm skips them on
// other platforms without fetching; on their own platform npm fetches them by version).
// Run after any `npm install` that rewrites package-lock.json: node lock-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const LOCK = new URL('./package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const wrapper = lock.packages['node_modules/@foundry-rs/anvil'];
const PLATFORMS = {
  'darwin-amd64': ['darwin', 'x64'],
  'darwin-arm64': ['darwin', 'arm64'],
  'linux-amd64': ['linux', 'x64'],
  'linux-arm64': ['linux', 'arm64'],
  'win32-amd64': ['win32', 'x64'],
};
let added = 0;
for (const name of Object.keys(wrapper.optionalDependencies)) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const [os, cpu] = PLATFORMS[name.replace('@foundry-rs/anvil-', '')];
  lock.packages[key] = {
    version: wrapper.optionalDependencies[name],
    cpu: [cpu],
    license: 'MIT OR Apache-2.0',
    optional: true,
    os: [os],
    bin: { anvil: os === 'win32' ? 'bin/anvil.exe' : 'bin/anvil' },
    engines: { node: '>=20' },
  };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
writeFileSync(LOCK, JSON.stringify(lock, null, 2) + '\n');
console.log(`package-lock.json: added ${added} platform entries`);
