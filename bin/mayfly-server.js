#!/usr/bin/env node
import '../dist/src/cli/server.js';
