#!/usr/bin/env node
import '../dist/src/cli/agent.js';
