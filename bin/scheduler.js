#!/usr/bin/env node
// Runs on the Node.js that npm/npx put first on PATH (the project's node@24 devDependency).
import '../src/main.ts';
